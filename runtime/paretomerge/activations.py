"""The activation-discrepancy profile: how far what each layer computes moved.

The parameter profile (:mod:`paretomerge.importance`) measures how far an expert's
weights moved from the base's; this one measures how far what they compute moved, on the
run's own questions (AP-BMM's activation prior). The search's prior combines the two
(:func:`~paretomerge.importance.combined_prior`).

The statistic, ``update``: decoder layer ``l`` maps its input ``h`` to ``h + g_l(h)``
(the residual stream plus the layer's update). Fed the base's own input ``h^B_l`` of the
layer at every prompt token ``t``, the expert's layer is compared with the base's::

    a_l = sum_t ||g^E_l(h^B_l,t) - g^B_l(h^B_l,t)|| / sum_t ||g^B_l(h^B_l,t)||
        = sum_t ||f^E_l(h^B_l,t) - h^B_l+1,t|| / sum_t ||h^B_l+1,t - h^B_l,t||

(Euclidean norms over the hidden size, sums over every token of every prompt): the
relative change of the layer's own update, dimensionless. The head variable (embeddings,
final norm, ``lm_head``) gets the mean of the same relative change of what its tensors
compute: the embeddings of the prompt tokens, and the logits of the base's last hidden
states. Ratios of sums, not means of per-token ratios, so that tokens with a tiny update
do not dominate. With several experts each is measured, and the profile is their mean.

Why the expert's layer sees the base's input (teacher forcing) rather than the expert's
own hidden states: a merge weight replaces one layer's parameters, so its prior should
measure what that layer's own parameters change. The hidden-state discrepancy of two
models run side by side (``sum_t ||h^E_l+1 - h^B_l+1|| / sum_t ||h^B_l+1||`` after layer
``l``, AP-BMM's) is cumulative: every layer inherits the change of the layers before it.
On the demo pair (:mod:`paretomerge.demo.pair`: both models fine-tuned in every layer
from one shared base, the thinking one then further in its last 3 layers only; the run's
32 search questions) it is 0.96 after layer 0 already and grows to 1.05 after layer 7:
its last 3 layers do rank first, but on a rise of a tenth of what layer 0 alone left, and
its growth from one layer to the next (0.96 at layer 0, at most 0.04 after) would rank
layer 0 first. ``update`` there is 0.69 to 1.34 in layers 0 to 4 and 3.1 to 8.7 in
layers 5 to 7. It is relative to the layer's update, not to the residual stream
``||h^B_l+1||``: relative to the stream the demo's layers 0 and 4 (the shared base's two
trained layers, whose updates are the largest) rank first, because a layer that adds
much changes the stream much, whether or not the expert's training touched it more.

How: one prompt at a time (no padding), each formatted with the base tokenizer's chat
template (``add_generation_prompt``; without a template the question as is) and cut to
:data:`MAX_PROMPT_TOKENS`; the same token ids go to every model. The base runs first, its
hidden states before and after every layer kept (``(L + 1) * tokens * hidden`` values in
the model's dtype: about 1.5 GB for Qwen3-4B and 8,000 prompt tokens) with its final norm
and ``lm_head``; then it is freed and each expert runs, one at a time, with a forward
pre-hook on every decoder layer that replaces the layer's input by the base's. Both run
on the CPU under ``torch.no_grad`` in their checkpoint's dtype; norms are taken in
float32 and summed in float64.

A profile is cached on the run's volume (``.paretomerge/activations/<key>.json``) under
:func:`activation_key`: the models' files, the questions, the statistic and
:data:`VERSION`, so a second run on the same models and questions reads it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from paretomerge.controller.anchors import CACHE_DIR, tree_digest
from paretomerge.evaluate.benchmarks import (
    BenchmarkDataError,
    benchmark_problems,
    question_texts,
)
from paretomerge.files import write_atomic
from paretomerge.importance import ActivationProfile, StatisticProfile
from paretomerge.questions import QuestionSplit, asked_ids, question_order
from paretomerge.spec import RunSpec, SpecProblem

STATISTIC = "update"
# Bump when the statistic or the way it is measured changes: cached profiles are measured
# again.
VERSION = 1
ACTIVATIONS_DIR = "activations"  # under the volume's CACHE_DIR
# Longer prompts are cut: a question's first 2,048 tokens show how a layer reads it, and
# the base's kept hidden states grow with every token.
MAX_PROMPT_TOKENS = 2048


class ActivationError(ValueError):
    """The models cannot be compared on these prompts (the message says why)."""


def compute_activation_profile(
    base_path: str | Path,
    expert_paths: Sequence[str | Path],
    questions: Sequence[str],
    *,
    volume: Path | None = None,
) -> ActivationProfile:
    """The ``update`` profile of ``expert_paths`` against ``base_path`` on ``questions``
    (see the module's docstring), ``L`` layer values and the head's.

    Args:
        questions: the calibration questions, unformatted (the chat template is applied
            here).
        volume: the run's volume, where the profile is cached (models inside it are
            hashed for the key); ``None``: measured, not cached.

    Raises:
        ActivationError: no question or no expert, experts whose hidden size, layer count
            or vocabulary differ from the base's, a layer of the base that adds nothing to
            its input on the prompts (its relative change is undefined), or non-finite
            hidden states.
    """
    if not questions:
        raise ActivationError("the activation profile needs at least one question")
    if not expert_paths:
        raise ActivationError("at least one expert model is needed")
    key = None
    if volume is not None:
        key = activation_key(base_path, expert_paths, questions, volume)
        cached = cached_activation_profile(volume, key)
        if cached is not None:
            return cached
    with _quiet_loading():
        base_states = _run_base(Path(base_path), questions)
        experts = [_run_expert(Path(path), base_states) for path in expert_paths]
    profile = ActivationProfile(
        statistic=STATISTIC,
        layers=np.mean([e.layers for e in experts], axis=0).tolist(),
        head=float(np.mean([e.head for e in experts])),
        experts=experts,
        prompts=len(questions),
        tokens=sum(len(ids) for ids in base_states.input_ids),
        key=key,
    )
    if volume is not None and key is not None:
        write_atomic(_cache_path(volume, key), profile.model_dump_json(indent=1) + "\n")
    return profile


def activation_key(
    base_path: str | Path,
    expert_paths: Sequence[str | Path],
    questions: Sequence[str],
    volume: Path,
) -> str:
    """A hex key that changes whenever the profile could: SHA-256 over the statistic,
    :data:`VERSION`, the questions, and the files of the base and of each expert in order
    (:func:`~paretomerge.controller.anchors.tree_digest`, remembered on ``volume``)."""
    settings = {"statistic": STATISTIC, "version": VERSION, "questions": list(questions)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in (base_path, *expert_paths):
        digest.update(tree_digest(Path(path), volume).encode())
    return digest.hexdigest()


def cached_activation_profile(volume: Path, key: str) -> ActivationProfile | None:
    """The profile stored under ``key``, or ``None`` (also for an unreadable entry: the
    profile is measured again and the entry rewritten)."""
    try:
        return ActivationProfile.model_validate_json(_cache_path(volume, key).read_text())
    except (OSError, ValidationError):
        return None


def _cache_path(volume: Path, key: str) -> Path:
    return volume / CACHE_DIR / ACTIVATIONS_DIR / f"{key}.json"


# --- the run's calibration questions -------------------------------------------------------


def calibration_questions(spec: RunSpec, volume: Path, count: int) -> list[str]:
    """The activation prior's questions: ``count`` (``spec.search.prior.prompts``) of the
    questions the search asks (each benchmark's first ``objectives.limit``, of which the search's
    side of a held-out split, as evaluations choose them), taken from the benchmarks in
    turn, each benchmark's in the run's seeded order
    (:func:`~paretomerge.questions.question_order`); fewer when the benchmarks hold fewer.

    Raises:
        ValueError: a benchmark's data is missing or malformed, or leaves the search no
            question (:func:`calibration_problems` names them all).
    """
    per_benchmark = [
        iter(_search_questions(spec, i, volume)) for i in range(len(spec.objectives.benchmarks))
    ]
    questions: list[str] = []
    while per_benchmark and len(questions) < count:
        for texts in list(per_benchmark):
            question = next(texts, None)
            if question is None:
                per_benchmark.remove(texts)
            elif len(questions) < count:
                questions.append(question)
    return questions


def calibration_problems(spec: RunSpec, volume: Path) -> Iterator[SpecProblem]:
    """Each benchmark whose search side holds no question, under its field
    (``spec.objectives.benchmarks[i]``). A benchmark whose data is missing or malformed
    is left to the data's own check."""
    for i, benchmark in enumerate(spec.objectives.benchmarks):
        if benchmark_problems(benchmark, volume):
            continue
        try:
            _search_questions(spec, i, volume)
        except BenchmarkDataError:
            continue
        except ValueError as error:
            yield SpecProblem(
                f"spec.objectives.benchmarks[{i}]",
                f"the activation prior (spec.search.prior.activations) is measured on the "
                f"search's questions, and this benchmark leaves it none: {error}",
            )


def _search_questions(spec: RunSpec, index: int, volume: Path) -> list[str]:
    """The texts of the questions the search asks of benchmark ``index``, in the run's
    seeded order.

    Raises:
        ValueError: none (a split of fewer than 2 questions, or an empty side).
    """
    benchmark = spec.objectives.benchmarks[index]
    texts = question_texts(benchmark, volume)
    held_out = spec.search.validation.held_out
    # The search's side of the held-out split, as the search driver's evaluations ask it.
    split = (
        QuestionSplit(held_out=held_out, seed=spec.search.seed, part="search")
        if held_out > 0.0
        else None
    )
    ids = asked_ids(benchmark.name, len(texts), spec.objectives.limit, split)
    if not ids:
        raise ValueError(f"none of its {len(texts)} question(s) is asked by the search")
    return [texts[i] for i in question_order(benchmark.name, ids, spec.search.seed)]


# --- the forward passes --------------------------------------------------------------------


@dataclass
class _BaseStates:
    """What the base's pass leaves for the experts'.

    ``input_ids[p]`` are prompt ``p``'s tokens, shape ``(T_p,)``; ``states[p][l]`` the
    base's hidden states entering layer ``l`` (``l = L``: leaving the last layer), shape
    ``(T_p, H)``; ``update_norms[l]`` is ``sum_t ||h_l+1 - h_l||`` and ``embedding_norm``
    ``sum_t ||h_0||`` over every prompt token; ``final_norm`` and ``lm_head`` are the base's
    modules, to compute its logits from ``states[p][L]``; ``identity`` what the experts
    must match (hidden size, layers, vocabulary).
    """

    input_ids: list[torch.Tensor]
    states: list[list[torch.Tensor]]
    update_norms: np.ndarray
    embedding_norm: float
    final_norm: torch.nn.Module
    lm_head: torch.nn.Module
    identity: dict[str, Any]


def _run_base(path: Path, questions: Sequence[str]) -> _BaseStates:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = _load(path)
    layers = _decoder_layers(model)
    input_ids = [_prompt_ids(tokenizer, question) for question in questions]
    empty = [i for i, ids in enumerate(input_ids) if len(ids) == 0]
    if empty:
        raise ActivationError(f"questions {empty} give no token with the tokenizer of {path}")
    states: list[list[torch.Tensor]] = []
    entering: list[torch.Tensor] = []

    def keep_input(layer: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        entering.append(_hidden_input(args, kwargs)[0].detach().clone())

    def keep_output(layer: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        entering.append(_hidden_output(output)[0].detach().clone())

    hooks = [layer.register_forward_pre_hook(keep_input, with_kwargs=True) for layer in layers]
    hooks.append(layers[-1].register_forward_hook(keep_output, with_kwargs=True))
    try:
        with torch.no_grad():
            for ids in input_ids:
                entering.clear()
                model.get_decoder()(input_ids=ids[None], use_cache=False)
                states.append(list(entering))
    finally:
        for hook in hooks:
            hook.remove()
    update_norms = np.array(
        [sum(_norms(s[i + 1] - s[i]) for s in states) for i in range(len(layers))]
    )
    _check_finite(update_norms, path)
    empty = np.flatnonzero(update_norms == 0.0).tolist()
    if empty:
        raise ActivationError(
            f"layers {empty} of base {path} add nothing to their input on these prompts: "
            "the relative change of their update is undefined"
        )
    return _BaseStates(
        input_ids=input_ids,
        states=states,
        update_norms=update_norms,
        embedding_norm=sum(_norms(s[0]) for s in states),
        final_norm=model.get_decoder().norm,
        lm_head=model.get_output_embeddings(),
        identity=_identity(model),
    )


def _run_expert(path: Path, base: _BaseStates) -> StatisticProfile:
    """One expert's ``update`` profile: its layers fed the base's states (teacher forced)."""
    model = _load(path)
    identity = _identity(model)
    for name, value in base.identity.items():
        if identity[name] != value:
            raise ActivationError(
                f"the activation profile compares hidden states token by token: expert "
                f"{path} has {name} {identity[name]}, the base {value}"
            )
    layers = _decoder_layers(model)
    changes = np.zeros(len(layers))
    embedding_change = 0.0
    prompt: list[torch.Tensor] = []  # the base's states of the prompt that runs

    def force_input(layer_index: int) -> Any:
        def hook(layer: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            nonlocal embedding_change
            hidden = _hidden_input(args, kwargs)
            if layer_index == 0:  # the expert's own embeddings of the prompt
                embedding_change += _norms(hidden[0] - prompt[0])
            forced = prompt[layer_index][None].to(hidden.dtype)
            if args:
                return (forced, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": forced}

        return hook

    def compare_output(layer_index: int) -> Any:
        def hook(layer: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            changes[layer_index] += _norms(_hidden_output(output)[0] - prompt[layer_index + 1])

        return hook

    hooks = [
        hook
        for index, layer in enumerate(layers)
        for hook in (
            layer.register_forward_pre_hook(force_input(index), with_kwargs=True),
            layer.register_forward_hook(compare_output(index), with_kwargs=True),
        )
    ]
    logit_change = logit_norm = 0.0
    try:
        with torch.no_grad():
            for ids, states in zip(base.input_ids, base.states, strict=True):
                prompt[:] = states
                model.get_decoder()(input_ids=ids[None], use_cache=False)
                last = states[-1]
                base_logits = base.lm_head(base.final_norm(last))
                expert_logits = model.get_output_embeddings()(model.get_decoder().norm(last))
                logit_change += _norms(expert_logits - base_logits)
                logit_norm += _norms(base_logits)
    finally:
        for hook in hooks:
            hook.remove()
    _check_finite(np.array([*changes, embedding_change, logit_change]), path)
    head = (embedding_change / base.embedding_norm + logit_change / logit_norm) / 2
    return StatisticProfile(layers=(changes / base.update_norms).tolist(), head=head)


def _hidden_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a decoder layer is called with, shape ``(1, T, H)``."""
    return args[0] if args else kwargs["hidden_states"]


def _hidden_output(output: Any) -> torch.Tensor:
    """The hidden states a decoder layer returns (a tuple's first, in older transformers)."""
    return output[0] if isinstance(output, tuple) else output


def _identity(model: Any) -> dict[str, Any]:
    config = model.config
    return {
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
    }


def _check_finite(values: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(values)):
        raise ActivationError(f"model {path} computes non-finite hidden states on the prompts")


def _norms(values: torch.Tensor) -> float:
    """``sum_t ||values_t||``, shape ``(T, H)`` in, in float64."""
    return float(torch.linalg.vector_norm(values.float(), dim=-1).double().sum())


def _load(path: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype="auto").eval()


def _decoder_layers(model: Any) -> torch.nn.ModuleList:
    return model.get_decoder().layers


def _prompt_ids(tokenizer: Any, question: str) -> torch.Tensor:
    """The tokens of one question as a chat prompt ending where the reply starts, shape
    ``(T,)``, at most :data:`MAX_PROMPT_TOKENS`."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": question}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    else:
        ids = tokenizer(question, return_tensors="pt").input_ids[0]
    return ids[:MAX_PROMPT_TOKENS]


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No progress bar per model loaded (a profile task's log stays readable)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
