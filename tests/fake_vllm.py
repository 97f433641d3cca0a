"""A ``vllm`` executable for tests of what runs around a model server (no GPU here).

``vllm serve MODEL_DIR --served-model-name N ... --port P`` answers ``GET /health``,
``GET /v1/models`` and chat completions on 127.0.0.1:P, and forks a worker that ignores
SIGTERM and holds the listening socket, as vLLM's engine processes outlive a careless stop.
Every question of a test's numeric benchmark has the answer 7: the base (a model directory
named ``base``) answers 0 in 5 tokens, the expert (``expert``) 7 in 50 tokens, any other
model (a merge) 7 in 20 tokens. ``FAKE_VLLM_HANG`` is a glob of model directories whose
requests never get an answer (a long evaluation, caught in the middle).

:func:`marked_processes` finds every live process that inherited a marker variable: what a
test's run started, however it detached itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

MARK_VARIABLE = "PARETOMERGE_TEST_MARK"

SCRIPT = """#!{python}
import fnmatch, json, os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

model_dir = sys.argv[2].rstrip("/")
served = sys.argv[sys.argv.index("--served-model-name") + 1]
port = int(sys.argv[sys.argv.index("--port") + 1])
hang = fnmatch.fnmatch(model_dir, os.environ.get("FAKE_VLLM_HANG") or "-")
role = os.path.basename(model_dir)
answer, tokens = {{"base": ("0", 5), "expert": ("7", 50)}}.get(role, ("7", 20))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            return self.send("")
        return self.send({{"object": "list", "data": [{{"id": served, "object": "model"}}]}})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        while hang:
            time.sleep(60)
        self.send({{
            "id": "c", "object": "chat.completion", "created": 0, "model": served,
            "choices": [{{"index": 0, "finish_reason": "stop",
                          "message": {{"role": "assistant", "content": "Answer: " + answer}}}}],
            "usage": {{"prompt_tokens": 9, "completion_tokens": tokens,
                       "total_tokens": 9 + tokens}},
        }})

    def send(self, payload):
        data = json.dumps(payload).encode() if payload != "" else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
if os.fork() == 0:  # the worker: deaf to SIGTERM, holding the port
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)
print("fake vllm serving", model_dir, "on", port, flush=True)
server.serve_forever()
"""


def install_fake_vllm(bin_dir: Path) -> Path:
    """Write the fake ``vllm`` into ``bin_dir``; returns its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    executable = bin_dir / "vllm"
    executable.write_text(SCRIPT.format(python=sys.executable))
    executable.chmod(0o755)
    return executable


@contextlib.contextmanager
def fake_vllm_environment(bin_dir: Path, **variables: str) -> Iterator[dict[str, str]]:
    """This process's environment with the fake ``vllm`` (written into ``bin_dir``) first
    on PATH, a new marker that every process of a test's run inherits, and ``variables``;
    on the way out, whatever the run left alive is killed by its marker."""
    install_fake_vllm(bin_dir)
    mark = uuid.uuid4().hex
    try:
        yield {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            MARK_VARIABLE: mark,
            "COLUMNS": "250",  # the run's log lines unwrapped
            **variables,
        }
    finally:
        for pid, _ in marked_processes(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def marked_processes(mark: str) -> list[tuple[int, str]]:
    """PID and command line of every live process whose environment holds
    ``PARETOMERGE_TEST_MARK=mark``."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append((int(entry.name), command))
    return found
