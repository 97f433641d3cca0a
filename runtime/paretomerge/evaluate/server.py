"""A small OpenAI-compatible chat server around ``transformers`` generation.

The ``transformers`` engine's stand-in for ``vllm serve`` where there is no GPU (tests,
demos with tiny models)::

    python -m paretomerge.evaluate.server MODEL_DIR --port 8000 [--device cpu|cuda]
        [--dtype auto|float32|bfloat16|float16] [--served-model-name NAME] [--max-model-len N]

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (no
streaming, ``n`` = 1). The prompt is the tokenizer's chat template with
``add_generation_prompt=True``. Sampling follows the request: ``temperature`` 0 is
greedy; ``top_k`` -1 or 0 disables top-k; ``seed`` makes a request reproducible. The
reply's ``usage.completion_tokens`` counts every generated token, thinking and the end
token included, as vLLM does. Requests that arrive while the model is busy are batched:
the next generation takes every waiting request with the same generation settings (up to
:data:`MAX_BATCH`, prompts left-padded), as a client with ``concurrency`` > 1 sends them;
a request with a ``seed`` is generated alone, so that it is reproducible.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "bfloat16", "float16")
MAX_BATCH = 16


class RequestError(ValueError):
    """A request the server refuses (HTTP ``status``, OpenAI error body)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat completion request this server honours."""

    messages: list[dict[str, str]]
    max_tokens: int | None
    temperature: float
    top_p: float
    top_k: int
    seed: int | None
    stop: list[str]


def _text_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" for part in content
    ):
        return "".join(str(part.get("text", "")) for part in content)
    raise RequestError("message content must be a string or a list of text parts")


def parse_chat_request(body: Any, served_name: str) -> ChatRequest:
    """Validate a ``/v1/chat/completions`` body.

    Raises:
        RequestError: a malformed body, another model's name, or ``n`` other than 1.
    """
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    if body.get("model") not in (None, served_name):
        raise RequestError(
            f"model {body.get('model')!r} does not exist (served: {served_name!r})", 404
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    parsed = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError("every message needs a role")
        parsed.append({"role": message["role"], "content": _text_content(message.get("content"))})
    if body.get("n", 1) != 1:
        raise RequestError("only n = 1 is supported")
    if body.get("stream"):
        raise RequestError("streaming is not supported")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stop = body.get("stop") or []
    try:
        return ChatRequest(
            messages=parsed,
            max_tokens=None if max_tokens is None else int(max_tokens),
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            top_k=int(body.get("top_k", -1)),
            seed=None if body.get("seed") is None else int(body["seed"]),
            stop=[stop] if isinstance(stop, str) else [str(s) for s in stop],
        )
    except (TypeError, ValueError) as error:
        raise RequestError(f"invalid sampling parameter: {error}") from None


@dataclass(frozen=True)
class Completion:
    """Generated text, why generation ended (``stop`` or ``length``), and token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Pending:
    """A request waiting for generation: its prompt's token ids, its generation config,
    what it may be batched by, and, once generated, its completion."""

    request: ChatRequest
    prompt_ids: list[int]
    config: Any  # transformers.GenerationConfig
    batch_key: object
    completion: Completion | None = None


class ChatModel:
    """A causal LM and its tokenizer; concurrent requests are generated in batches."""

    def __init__(self, model_dir: Path, device: str, dtype: str, max_model_len: int | None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if not self.tokenizer.chat_template:
            raise ValueError(f"{model_dir}: the tokenizer has no chat template")
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
        self.model.to(device).eval()
        self.device = device
        positions = getattr(self.model.config, "max_position_embeddings", None)
        # Beyond its position embeddings a model produces garbage: never serve past them.
        limits = [n for n in (max_model_len, positions) if n is not None]
        self.max_model_len = min(limits) if limits else None
        self.eos_token_ids = self._eos_token_ids()
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.eos_token_ids[0]
        self._generating = threading.Lock()  # one generation at a time
        self._waiting_lock = threading.Lock()
        self._waiting: list[_Pending] = []

    def _eos_token_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured]
        ids = [i for i in ids if i is not None]
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def complete(self, request: ChatRequest) -> Completion:
        """Generate the assistant's reply to ``request.messages``, batched with the other
        requests waiting meanwhile.

        Raises:
            RequestError: the prompt alone fills the context.
        """
        pending = self._prepare(request)
        with self._waiting_lock:
            self._waiting.append(pending)
        with self._generating:
            # Whoever holds the lock generates for everyone waiting; ours may be done.
            if pending.completion is None:
                self._generate(self._take_batch(pending.batch_key))
        return pending.completion

    def _prepare(self, request: ChatRequest) -> _Pending:
        from transformers import GenerationConfig

        prompt = self.tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, tokenize=False
        )
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        room = None if self.max_model_len is None else self.max_model_len - len(prompt_ids)
        if room is not None and room <= 0:
            raise RequestError(
                f"the prompt has {len(prompt_ids)} tokens; the context is {self.max_model_len}"
            )
        budget = [n for n in (request.max_tokens, room) if n is not None]
        if not budget:
            raise RequestError("max_tokens is required: the model has no context limit")
        sampling = request.temperature > 0.0
        config = GenerationConfig(
            max_new_tokens=min(budget),
            do_sample=sampling,
            temperature=request.temperature if sampling else None,
            top_p=request.top_p if sampling else None,
            top_k=max(request.top_k, 0) if sampling else None,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            stop_strings=request.stop or None,
        )
        key = object() if request.seed is not None else config.to_json_string()
        return _Pending(request, prompt_ids, config, key)

    def _take_batch(self, key: object) -> list[_Pending]:
        """Remove and return the waiting requests generated with ``key``, oldest first."""
        with self._waiting_lock:
            batch = [p for p in self._waiting if p.batch_key == key][:MAX_BATCH]
            self._waiting = [p for p in self._waiting if p not in batch]
        return batch

    def _generate(self, batch: list[_Pending]) -> None:
        """One ``generate`` call for ``batch`` (same config), prompts padded on the left."""
        import torch

        width = max(len(p.prompt_ids) for p in batch)
        input_ids = torch.tensor(
            [[self.pad_token_id] * (width - len(p.prompt_ids)) + p.prompt_ids for p in batch]
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(p.prompt_ids)) + [1] * len(p.prompt_ids) for p in batch]
        )
        config = batch[0].config
        with torch.inference_mode():
            if batch[0].request.seed is not None:
                torch.manual_seed(batch[0].request.seed)
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                generation_config=config,
                tokenizer=self.tokenizer,
            )
        for pending, row in zip(batch, output[:, width:].tolist(), strict=True):
            pending.completion = self._completion(pending, row)

    def _completion(self, pending: _Pending, row: list[int]) -> Completion:
        """A batch row's reply: its tokens up to and including the first end token (a row
        that ended early is padded after it)."""
        ends = [i for i, token in enumerate(row) if token in self.eos_token_ids]
        if ends:
            generated = row[: ends[0] + 1]
        else:
            generated = list(row)
            while generated and generated[-1] == self.pad_token_id:
                generated.pop()  # a row a stop string ended: padded by generate
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        stopped = bool(ends)
        for stop in pending.request.stop:
            if stop in text:
                text, stopped = text[: text.index(stop)], True
        limit = pending.config.max_new_tokens
        return Completion(
            text=text,
            finish_reason="stop" if stopped or len(generated) < limit else "length",
            prompt_tokens=len(pending.prompt_ids),
            completion_tokens=len(generated),
        )


class ChatHandler(BaseHTTPRequestHandler):
    """Routes of the OpenAI API subset; ``self.server`` is a :class:`ChatServer`."""

    server: ChatServer

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, {"status": "ok"})
        elif self.path == "/v1/models":
            model = {"id": self.server.served_name, "object": "model", "owned_by": "paretomerge"}
            self._reply(200, {"object": "list", "data": [model]})
        else:
            self._error(RequestError(f"no route {self.path}", 404))

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self._error(RequestError(f"no route {self.path}", 404))
            return
        try:
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length))
            except json.JSONDecodeError as error:
                raise RequestError(f"the body is not JSON: {error}") from None
            completion = self.server.model.complete(
                parse_chat_request(body, self.server.served_name)
            )
        except RequestError as error:
            self._error(error)
            return
        self._reply(200, _completion_body(completion, self.server.served_name))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: RequestError) -> None:
        kind = "not_found_error" if error.status == 404 else "invalid_request_error"
        self._reply(error.status, {"error": {"message": str(error), "type": kind}})


def _completion_body(completion: Completion, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        },
    }


class ChatServer(ThreadingHTTPServer):
    """The HTTP server, holding the model and the name it is served under."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: ChatModel, served_name: str):
        super().__init__(address, ChatHandler)
        self.model = model
        self.served_name = served_name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paretomerge.evaluate.server")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-model-name", help="Model name in requests [the directory's].")
    parser.add_argument("--device", help="cpu or cuda [cuda when available].")
    parser.add_argument("--dtype", choices=DTYPES, default="auto")
    parser.add_argument(
        "--max-model-len", type=int, help="Context in tokens, prompt included [the model's]."
    )
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = ChatModel(args.model_dir, device, args.dtype, args.max_model_len)
    name = args.served_model_name or args.model_dir.resolve().name
    server = ChatServer((args.host, args.port), model, name)
    print(
        f"serving {name} on http://{args.host}:{args.port} ({device})", file=sys.stderr, flush=True
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
