"""The ``ParetoMergeRun``: one typed model of the run file.

The same manifest is ``kubectl apply``-ed on a cluster and given to ``paretomerge run``
locally; this module is its single definition. Field names are camelCase in the file
(``initialPoints``) and snake_case in Python (``initial_points``). The CRD's OpenAPI
schema is generated from these classes, so the API server rejects what pydantic rejects
field by field; :func:`semantic_problems` adds the checks that span several fields, and
the operator and the CLI both report them. :func:`check_run` finds every problem of a run
file in one reading: a bad field is named, and the checks across the fields that did parse
still run.

Paths (models, benchmark data) are relative to the run's volume: a PVC on a cluster, a
directory locally. They may not be absolute and may not climb out with ``..``.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from paretomerge.k8s.constants import API_VERSION, KIND
from paretomerge.merge.methods import METHODS, MergeMethodName, method_names
from paretomerge.vocabulary import PROFILE_STRATEGIES, PartitionStrategy, StrategyName

BUILTIN_BENCHMARKS = ("gpqa_diamond", "aime25")
MAX_PATH_LENGTH = 1024
MAX_NAME_LENGTH = 253
MAX_SECONDS = 30 * 24 * 3600  # a month: longer deadlines are typos (or overflow int64)
MAX_REPEATS = 100
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def _inside_volume(path: str) -> str:
    parts = PurePosixPath(path).parts
    if path.startswith("/") or path.startswith("\\") or (parts and ":" in parts[0]):
        raise ValueError(f"{path!r} must be relative to the run's volume, not absolute")
    if ".." in parts:
        raise ValueError(f"{path!r} must not leave the run's volume ('..')")
    if not parts or parts == (".",):
        raise ValueError("must name a file or directory inside the run's volume")
    return path


VolumePath = Annotated[
    str, Field(min_length=1, max_length=MAX_PATH_LENGTH), AfterValidator(_inside_volume)
]
UnitInterval = Annotated[float, Field(ge=0.0, le=1.0)]
LabelValue = Annotated[
    str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
]


class SpecModel(BaseModel):
    """camelCase in files, snake_case in code, unknown fields and NaN/infinity rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )


# --- models and merge ---------------------------------------------------------------------


class ModelRef(SpecModel):
    """A Hugging Face model directory (safetensors) on the run's volume."""

    path: VolumePath


class ModelsSpec(SpecModel):
    """The base (the "instruct" model) and the experts merged into it."""

    base: ModelRef
    experts: list[ModelRef] = Field(min_length=1, max_length=16)


class BlocksSpec(SpecModel):
    """The partition of layers into contiguous blocks that ``bambo`` (granularity
    ``block``) and ``coarse-to-fine`` search; the other strategies ignore it.

    ``count`` is the blocks ``bambo`` searches, and those of ``coarse-to-fine``'s finest
    phase (its first half of the budget searches half as many); a count above the layers
    means one block per layer. The DP minimises ``sum_blocks alpha * SSE(B) + beta *
    (sum_B v - S/k)^2`` over the normalised importance ``v``; ``variance`` is ``alpha=1,
    beta=0``, ``balance`` the opposite, ``hybrid`` uses both as given.
    """

    count: int = Field(default=8, ge=1, le=1024)
    strategy: PartitionStrategy = "hybrid"
    alpha: float = Field(default=1.0, ge=0.0)
    beta: float = Field(default=0.005, ge=0.0)


# The strategies that cut the layers into spec.merge.blocks; the others ignore it.
BLOCK_STRATEGIES = frozenset({"bambo", "coarse-to-fine"})


class MergeSpec(SpecModel):
    """How a decision vector becomes a merged model (mergekit)."""

    method: MergeMethodName = "task_arithmetic"
    granularity: Literal["layer", "block", "model"] = "layer"
    blocks: BlocksSpec = BlocksSpec()
    density: float | None = Field(default=None, gt=0.0, le=1.0)


# --- search ---------------------------------------------------------------------------------


class AcquisitionSpec(SpecModel):
    """qLogNEHVI's optimisation budget (see :class:`paretomerge.search.AcquisitionSettings`)."""

    num_restarts: int = Field(default=4, ge=1, le=64)
    raw_samples: int = Field(default=256, ge=1, le=8192)
    mc_samples: int = Field(default=128, ge=1, le=4096)


class ValidationSpec(SpecModel):
    """Evaluations again, after the search budget, of the candidates that may be on the
    front (their posterior probability of being non-dominated is at least 0.1), most
    likely first and spread over them before any is validated twice.

    ``budget`` counts these evaluations, apart from the search's (0: no validation).
    ``repeats`` is how many times a validation asks each question (default: as the
    objectives say). ``heldOut`` is the fraction of each benchmark's questions, drawn by
    ``search.seed``, that the search never asks and validation asks alone: the validated
    values are then unbiased by the selection, and the final front is valued by them.
    With 0, validation asks the search's questions again and its values are pooled with
    the search's.
    """

    budget: int = Field(default=0, ge=0, le=10_000)
    repeats: int | None = Field(default=None, ge=1, le=MAX_REPEATS)
    held_out: float = Field(default=0.0, ge=0.0, lt=1.0)


class PriorSpec(SpecModel):
    """What the search's prior is measured from (strategies that use a profile).

    The parameter profile (task-vector norms per layer) always; with ``activations`` also
    the activation-discrepancy profile: how much each layer's own update changed between
    the base and the experts on ``prompts`` of the search's own questions
    (:mod:`paretomerge.activations`; the models run once each on the CPU in the profile
    task). The prior is then ``(1 - activationWeight) * parameter + activationWeight *
    activation``, each min-max normalised (AP-BMM: 0.5).
    """

    activations: bool = False
    activation_weight: UnitInterval = 0.5
    prompts: int = Field(default=32, ge=1, le=1024)


CostUnit = Literal["outputTokens", "gpuHours"]


class CostBudgetSpec(SpecModel):
    """What a run may spend, in exactly one unit: ``outputTokens`` (tokens generated, the
    API's ``usage.completion_tokens``, thinking included) or ``gpuHours`` (hours of
    ``(server start + generation) * GPUs`` of the evaluations).

    Every evaluation the run pays for counts: the anchors it evaluates (not those it
    finds in the cache), every candidate (a screened one for the stages it asked) and
    every validation. A candidate is started only while what was spent, the predicted
    cost of those running and of it, and a reserve for the validations still to come fit
    in the budget (:mod:`paretomerge.search.cost_budget`); ``search.budget`` is then the
    horizon the strategy plans by, not a cap, so the candidates that screening makes
    cheaper buy more candidates.
    """

    output_tokens: float | None = Field(default=None, gt=0, le=1e15)
    gpu_hours: float | None = Field(default=None, gt=0, le=1e7)

    @model_validator(mode="after")
    def _one_unit(self) -> CostBudgetSpec:
        if (self.output_tokens is None) == (self.gpu_hours is None):
            raise ValueError("give exactly one of outputTokens and gpuHours")
        return self

    @property
    def unit(self) -> CostUnit:
        return "outputTokens" if self.output_tokens is not None else "gpuHours"

    @property
    def limit(self) -> float:
        """The budget, in :attr:`unit`."""
        return self.output_tokens if self.output_tokens is not None else self.gpu_hours

    def charged(self, output_tokens: float, gpu_seconds: float) -> float:
        """What a cost of ``output_tokens`` and ``gpu_seconds`` counts, in :attr:`unit`."""
        return output_tokens if self.output_tokens is not None else gpu_seconds / 3600.0


class SearchSpec(SpecModel):
    """The multi-objective search over merge weights.

    ``budget`` counts every candidate evaluated (initial design included), anchors and
    validation not; with a ``costBudget`` it is the horizon the strategy plans by, not a
    cap. ``initialSolutions`` are scalars: each fills every merge weight.
    """

    strategy: StrategyName = "coarse-to-fine"
    budget: int = Field(default=88, ge=1, le=10_000)
    initial_points: int = Field(default=8, ge=1, le=10_000)
    initial_solutions: list[UnitInterval] = Field(default=[0.55, 0.8], max_length=64)
    reference_point: list[float] = Field(default=[-0.2, -0.2], min_length=1, max_length=8)
    weight_range: tuple[float, float] = (0.0, 1.0)
    density_range: tuple[UnitInterval, UnitInterval] | None = (0.7, 0.9)
    acquisition: AcquisitionSpec = AcquisitionSpec()
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    validation: ValidationSpec = ValidationSpec()
    prior: PriorSpec = PriorSpec()
    cost_budget: CostBudgetSpec | None = None


# --- objectives and evaluation ------------------------------------------------------------


class BenchmarkSpec(SpecModel):
    """One benchmark.

    ``builtin`` benchmarks are evalscope's own definitions (``gpqa_diamond``, ``aime25``),
    read offline from ``path`` (default ``datasets/<name>``): a ``.jsonl``, ``.csv`` or
    ``.parquet`` file, or a directory as a hub download leaves it (``train.*`` or
    ``gpqa_diamond.csv`` for gpqa_diamond, ``test.*`` for aime25, or the hubs'
    ``data/<split>-*.parquet`` shards). ``jsonl`` benchmarks are the
    user's own file at ``path`` in one of two formats: ``multiple_choice`` (``question``,
    ``choices``, ``answer`` a letter) or ``numeric`` (``question``, ``answer`` a number).
    ``repeats``, when set, replaces ``objectives.repeats`` for this benchmark.
    """

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$")
    type: Literal["builtin", "jsonl"] = "builtin"
    path: VolumePath | None = None
    format: Literal["multiple_choice", "numeric"] | None = None
    repeats: int | None = Field(default=None, ge=1, le=MAX_REPEATS)

    @property
    def data_path(self) -> str:
        """Where the data lives on the volume (a directory for builtin benchmarks)."""
        return self.path if self.path is not None else f"datasets/{self.name}"


class ObjectivesSpec(SpecModel):
    """The benchmarks behind f1 (accuracy) and f2 (output tokens), each averaged over them.

    ``limit`` caps the questions of each benchmark (its first ones); ``repeats`` is how
    many times each question is asked (evalscope's ``repeats``): accuracy and tokens are
    averaged over every answer, and their standard errors shrink about as ``1 /
    sqrt(repeats)``. A benchmark's own ``repeats`` replaces it.
    """

    benchmarks: list[BenchmarkSpec] = Field(min_length=1, max_length=32)
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    repeats: int = Field(default=1, ge=1, le=MAX_REPEATS)

    @property
    def names(self) -> list[str]:
        """The benchmarks' names, in their order."""
        return [b.name for b in self.benchmarks]

    def repeats_of(self, benchmark: BenchmarkSpec) -> int:
        """How many times each question of ``benchmark`` is asked."""
        return benchmark.repeats or self.repeats


class SamplingSpec(SpecModel):
    """Sampling settings sent with every request."""

    temperature: float = Field(default=0.6, ge=0.0, le=5.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    top_k: int = Field(default=20, ge=-1, le=100_000)


class SecretKeyRef(SpecModel):
    """A key of a Kubernetes Secret (locally: an environment variable of that name)."""

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DNS_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[-._a-zA-Z0-9]+$")


class EndpointSpec(SpecModel):
    """An OpenAI-compatible server the user already runs (engine ``endpoint``)."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    model: str | None = Field(default=None, max_length=MAX_PATH_LENGTH)
    api_key_secret: SecretKeyRef | None = None


class ScreeningSpec(SpecModel):
    """Adaptive evaluation: a candidate is asked its questions stage by stage, and stopped
    (``screened``) once it is probably dominated.

    ``stages`` are the cumulative shares of each benchmark's questions asked after each
    stage, increasing, the last 1.0; every candidate asks them in one seeded order
    (:func:`paretomerge.questions.question_order`), within one served model. After each
    stage but the last, a candidate stops when the search's surrogate, conditioned on
    what the stage measured, puts it behind a finished candidate or an anchor with
    probability at least ``confidence``: see :mod:`paretomerge.search.screening`.
    Anchors and validations are always evaluated in full; a screened candidate is
    reported only once a validation has evaluated it.

    The default confidence, 0.9, was chosen on landscapes other than those the benchmark
    reports on (``bench/search_efficiency.py``): the one that stopped no candidate of the
    true front and kept the front's hypervolume; 0.5 and 0.7 saved 59% and 36% of the
    tokens but stopped most of the true front's candidates.
    """

    stages: list[float] = Field(default=[0.1, 0.25, 1.0], min_length=2, max_length=16)
    confidence: float = Field(default=0.9, gt=0.0, lt=1.0)


class EvaluationSpec(SpecModel):
    """How a model is served and queried.

    ``sampling`` applies to the expert and to every merge (the thinking settings),
    ``baseSampling`` to the base (the instruct settings). ``maxModelLen`` defaults to
    ``maxTokens + 3000`` (room for the prompt).
    """

    engine: Literal["vllm", "transformers", "endpoint"] = "vllm"
    endpoint: EndpointSpec | None = None
    max_tokens: int = Field(default=35000, ge=1, le=1_000_000)
    max_model_len: int | None = Field(default=None, ge=1, le=10_000_000)
    sampling: SamplingSpec = SamplingSpec()
    base_sampling: SamplingSpec = SamplingSpec(temperature=0.7, top_p=0.8, top_k=20)
    concurrency: int = Field(default=32, ge=1, le=1024)
    timeout_seconds: int = Field(default=3600, ge=1, le=MAX_SECONDS)
    screening: ScreeningSpec | None = None

    @property
    def model_len(self) -> int:
        return self.max_model_len or self.max_tokens + 3000


# --- execution ------------------------------------------------------------------------------


class StorageSpec(SpecModel):
    """The run's volume: a PVC holding the models, the data and the run directories."""

    claim_name: str = Field(default="paretomerge-models", pattern=DNS_SUBDOMAIN, max_length=253)
    runs_path: VolumePath = "runs"


class ResourcesSpec(SpecModel):
    """What a candidate pod asks for."""

    gpus: int = Field(default=1, ge=0, le=64)
    gpu_resource: str = Field(
        default="nvidia.com/gpu",
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
        max_length=253,
    )
    memory: str = Field(default="64Gi", pattern=r"^[0-9]+(\.[0-9]+)?([EPTGMk]i?|[eE][0-9]+)?$")
    cpu: str = Field(default="8", pattern=r"^[0-9]+(\.[0-9]+)?m?$")


class ExecutionSpec(SpecModel):
    """Where and how candidates run, and when a run gives up."""

    parallelism: int = Field(default=4, ge=1, le=256)
    max_failed_candidates: int = Field(default=8, ge=0, le=10_000)
    candidate_retries: int = Field(default=1, ge=0, le=10)
    keep_merged_models: Literal["none", "pareto", "all"] = "pareto"
    storage: StorageSpec = StorageSpec()
    resources: ResourcesSpec = ResourcesSpec()
    node_selector: dict[str, LabelValue] = {}
    tolerations: list[dict[str, Any]] = []
    affinity: dict[str, Any] | None = None
    priority_class_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    active_deadline_seconds: int = Field(default=6 * 3600, ge=60, le=MAX_SECONDS)
    hub_token_secret: SecretKeyRef | None = None


class RunSpec(SpecModel):
    models: ModelsSpec
    merge: MergeSpec = MergeSpec()
    search: SearchSpec = SearchSpec()
    objectives: ObjectivesSpec
    evaluation: EvaluationSpec = EvaluationSpec()
    execution: ExecutionSpec = ExecutionSpec()


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata a run file uses; the rest is kept, not checked."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str | None = Field(default=None, max_length=63)


class ParetoMergeRun(SpecModel):
    """A whole run manifest (``status`` is the operator's and is ignored here)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    api_version: Literal[API_VERSION]
    kind: Literal[KIND]
    metadata: ObjectMeta
    spec: RunSpec

    @property
    def name(self) -> str:
        return self.metadata.name


# --- validation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecProblem:
    """One problem of a run file: the field at fault (``spec.search.budget``) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class RemovedField(SpecProblem):
    """A field an earlier version had; ``message`` says what takes its place."""

    def __str__(self) -> str:
        return f"{self.field} was removed: {self.message}"


#: Fields of earlier versions, and what takes their place. A run file that still has one
#: is refused, naming it; a run directory's ``run.yaml``, written by an earlier
#: controller, is read without them (:func:`load_started_run`).
REMOVED_FIELDS = {
    "spec.search.batchSize": "execution.parallelism is how many candidates run at once",
}


class SpecError(ValueError):
    """A run file with problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[SpecProblem], source: str = "run file"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)):\n{lines}")


def _field_name(loc: tuple[str | int, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


#: One check across fields: the problems it finds in a spec.
CrossFieldCheck = Callable[[RunSpec], Iterator[SpecProblem]]


def _initial_points_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    search = spec.search
    if search.initial_points > search.budget:
        yield SpecProblem(
            "spec.search.initialPoints",
            f"{search.initial_points} is above the budget ({search.budget})",
        )


def _initial_solutions_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    search = spec.search
    if len(search.initial_solutions) > search.initial_points:
        yield SpecProblem(
            "spec.search.initialSolutions",
            f"{len(search.initial_solutions)} solutions do not fit in initialPoints "
            f"({search.initial_points})",
        )


def _reference_point_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    if len(spec.search.reference_point) != 2:
        yield SpecProblem(
            "spec.search.referencePoint",
            f"needs 2 values (accuracy f1, tokens f2), got {len(spec.search.reference_point)}",
        )


def _weight_range_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    low, high = spec.search.weight_range
    if not low < high:
        yield SpecProblem("spec.search.weightRange", f"[{low}, {high}] is empty: need low < high")


def _solutions_in_range_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    low, high = spec.search.weight_range
    for i, weight in enumerate(spec.search.initial_solutions):
        if low < high and not low <= weight <= high:
            yield SpecProblem(
                f"spec.search.initialSolutions[{i}]",
                f"{weight} is outside weightRange [{low}, {high}]",
            )


def _density_range_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    density_range = spec.search.density_range
    if density_range is None:
        return
    if not density_range[0] <= density_range[1]:
        yield SpecProblem("spec.search.densityRange", f"{list(density_range)} needs low <= high")
    if density_range[0] <= 0.0:
        yield SpecProblem("spec.search.densityRange", "a density must be above 0")


def _held_out_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    validation = spec.search.validation
    if validation.held_out > 0.0 and validation.budget == 0:
        yield SpecProblem(
            "spec.search.validation.heldOut",
            "questions held out of the search are asked by validation only: set "
            "validation.budget, or heldOut to 0",
        )


def _cost_budget_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    budget = spec.search.cost_budget
    if budget is not None and budget.unit == "gpuHours" and spec.execution.resources.gpus == 0:
        yield SpecProblem(
            "spec.search.costBudget.gpuHours",
            "counts the GPU-hours of the evaluations, and execution.resources.gpus is 0: "
            "nothing would be counted (give outputTokens, or the GPUs)",
        )


def _merge_density_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    merge = spec.merge
    if merge.density is not None and not METHODS[merge.method].has_density:
        sparsifying = sorted(method_names(lambda method: method.has_density))
        yield SpecProblem(
            "spec.merge.density",
            f"applies to sparsifying methods only ({', '.join(sparsifying)}), not {merge.method}",
        )


def _strategy_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    strategy, granularity = spec.search.strategy, spec.merge.granularity
    if strategy == "bambo" and granularity != "block":
        yield SpecProblem(
            "spec.merge.granularity", "strategy bambo searches block weights: set it to block"
        )
    if granularity == "block" and strategy != "bambo":
        yield SpecProblem(
            "spec.search.strategy", f"granularity block is searched by bambo, not {strategy}"
        )
    if strategy == "model-level" and granularity != "model":
        yield SpecProblem(
            "spec.merge.granularity", "strategy model-level searches one weight: set it to model"
        )
    if granularity == "model" and strategy in PROFILE_STRATEGIES:
        yield SpecProblem(
            "spec.search.strategy",
            f"{strategy} needs per-layer weights; granularity model has one weight",
        )
    if strategy not in BLOCK_STRATEGIES and spec.merge.blocks != BlocksSpec():
        changed = sorted(
            name
            for name in BlocksSpec.model_fields
            if getattr(spec.merge.blocks, name) != getattr(BlocksSpec(), name)
        )
        yield SpecProblem(
            f"spec.merge.blocks.{changed[0]}",
            f"strategy {strategy} searches no blocks; only "
            f"{' and '.join(sorted(BLOCK_STRATEGIES))} use spec.merge.blocks (remove it, or "
            "choose one of them)",
        )


def _model_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    models = spec.models
    base = str(PurePosixPath(models.base.path))
    seen: dict[str, int] = {}
    for i, expert in enumerate(models.experts):
        path = str(PurePosixPath(expert.path))
        if path == base:
            yield SpecProblem(f"spec.models.experts[{i}].path", f"{path!r} is the base model")
        if path in seen:
            yield SpecProblem(
                f"spec.models.experts[{i}].path",
                f"{path!r} repeats spec.models.experts[{seen[path]}]",
            )
        seen.setdefault(path, i)


def _benchmark_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    seen: dict[str, int] = {}
    for i, benchmark in enumerate(spec.objectives.benchmarks):
        where = f"spec.objectives.benchmarks[{i}]"
        if benchmark.name in seen:
            yield SpecProblem(
                f"{where}.name", f"{benchmark.name!r} repeats benchmarks[{seen[benchmark.name]}]"
            )
        seen.setdefault(benchmark.name, i)
        if benchmark.type == "builtin":
            if benchmark.name not in BUILTIN_BENCHMARKS:
                yield SpecProblem(
                    f"{where}.name",
                    f"{benchmark.name!r} is not a builtin benchmark "
                    f"({', '.join(BUILTIN_BENCHMARKS)}); for your own data set type: jsonl",
                )
            if benchmark.format is not None:
                yield SpecProblem(f"{where}.format", "applies to jsonl benchmarks only")
        else:
            if benchmark.path is None:
                yield SpecProblem(f"{where}.path", "a jsonl benchmark needs the path of its file")
            if benchmark.format is None:
                yield SpecProblem(
                    f"{where}.format", "a jsonl benchmark needs multiple_choice or numeric"
                )


def _endpoint_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    evaluation = spec.evaluation
    if evaluation.engine == "endpoint" and evaluation.endpoint is None:
        yield SpecProblem("spec.evaluation.endpoint", "engine endpoint needs endpoint.url")
    if evaluation.engine != "endpoint" and evaluation.endpoint is not None:
        yield SpecProblem("spec.evaluation.endpoint", f"is not used by engine {evaluation.engine}")


def _model_len_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    evaluation = spec.evaluation
    if evaluation.max_model_len is not None and evaluation.max_model_len <= evaluation.max_tokens:
        yield SpecProblem(
            "spec.evaluation.maxModelLen",
            f"{evaluation.max_model_len} leaves no room for the prompt above maxTokens "
            f"({evaluation.max_tokens})",
        )


def _screening_problems(spec: RunSpec) -> Iterator[SpecProblem]:
    if spec.evaluation.screening is None:
        return
    stages = spec.evaluation.screening.stages
    if not all(0.0 < share <= 1.0 for share in stages):
        yield SpecProblem("spec.evaluation.screening.stages", f"{stages}: shares lie in (0, 1]")
    elif any(later <= earlier for earlier, later in itertools.pairwise(stages)):
        yield SpecProblem("spec.evaluation.screening.stages", f"{stages} must increase")
    elif stages[-1] != 1.0:
        yield SpecProblem(
            "spec.evaluation.screening.stages",
            f"{stages}: the last stage asks every question, so it is 1.0",
        )


#: The checks that span several fields (the schema checks each field on its own), each
#: with the fields it reads: where one of them did not parse, its value is not known and
#: the check waits for it (:func:`semantic_problems`).
CROSS_FIELD_CHECKS: tuple[tuple[tuple[str, ...], CrossFieldCheck], ...] = (
    (("spec.search.initialPoints", "spec.search.budget"), _initial_points_problems),
    (("spec.search.initialSolutions", "spec.search.initialPoints"), _initial_solutions_problems),
    (("spec.search.referencePoint",), _reference_point_problems),
    (("spec.search.weightRange",), _weight_range_problems),
    (("spec.search.initialSolutions", "spec.search.weightRange"), _solutions_in_range_problems),
    (("spec.search.densityRange",), _density_range_problems),
    (("spec.search.validation.heldOut", "spec.search.validation.budget"), _held_out_problems),
    (
        ("spec.search.costBudget", "spec.execution.resources.gpus"),
        _cost_budget_problems,
    ),
    (("spec.merge.density", "spec.merge.method"), _merge_density_problems),
    (
        ("spec.search.strategy", "spec.merge.granularity", "spec.merge.blocks"),
        _strategy_problems,
    ),
    (("spec.models",), _model_problems),
    (("spec.objectives.benchmarks",), _benchmark_problems),
    (("spec.evaluation.engine", "spec.evaluation.endpoint"), _endpoint_problems),
    (("spec.evaluation.maxModelLen", "spec.evaluation.maxTokens"), _model_len_problems),
    (("spec.evaluation.screening",), _screening_problems),
)


def semantic_problems(
    spec: RunSpec, unknown: frozenset[str] = frozenset()
) -> Iterator[SpecProblem]:
    """Problems that span several fields, found by every check whose fields are all known
    (none of them is, or lies inside or around, one of the ``unknown`` fields)."""
    for reads, check in CROSS_FIELD_CHECKS:
        if not unknown_among(reads, unknown):
            yield from check(spec)


def unknown_among(fields: Iterable[str], unknown: Iterable[str]) -> list[str]:
    """The ``unknown`` fields that are one of ``fields``, lie inside one (``spec.search``
    holds ``spec.search.budget``, ``spec.models.experts`` holds ``spec.models.experts[0]``)
    or hold one: the values those fields would be read from."""
    return sorted({u for u in unknown for f in fields if _nested(u, f) or _nested(f, u)})


def _nested(inner: str, outer: str) -> bool:
    """Whether field ``inner`` is field ``outer`` or lies inside it."""
    return inner == outer or (inner.startswith(outer) and inner[len(outer)] in ".[")


# --- reading a run file through --------------------------------------------------------------

#: The fields the preflight (:mod:`paretomerge.preflight`) reads: it waits until every one of
#: them parses.
PREFLIGHT_READS = (
    "metadata.name",
    "spec.models",
    "spec.objectives",
    "spec.evaluation.engine",
    "spec.evaluation.endpoint",
    "spec.search.budget",
    "spec.execution.parallelism",
    "spec.execution.keepMergedModels",
    "spec.execution.storage",
)


@dataclass(frozen=True)
class RunFileCheck:
    """A manifest read through to its end: every problem of its fields and across them,
    and the run as far as it parsed (what the preflight then looks at).

    ``unknown`` are the fields whose values are not known: those that did not parse (and
    the objects a missing required field leaves incomplete), and for a misspelt field the
    one it suggests. Where a field is bad, ``run`` has the default in its place; the
    checks that read it wait (:func:`semantic_problems`). ``run`` is ``None`` when the
    metadata or a required section (models, objectives) did not parse.
    """

    problems: list[SpecProblem]
    run: ParetoMergeRun | None
    unknown: frozenset[str]

    def preflight_run(self) -> ParetoMergeRun | None:
        """The run as far as it parsed where every field the preflight reads
        (:data:`PREFLIGHT_READS`) did, bad fields elsewhere or not: what the preflight can
        look at; else ``None``."""
        if self.run is None or unknown_among(PREFLIGHT_READS, self.unknown):
            return None
        return self.run

    def preflight_waits(self) -> SpecProblem:
        """Where :meth:`preflight_run` is ``None``, the problem that says which fields the
        preflight waits for: fixing them may show more."""
        waiting_for = unknown_among(PREFLIGHT_READS, self.unknown)
        return SpecProblem(
            "(preflight)",
            "the models, data, engine and volume are not looked at until "
            f"{', '.join(waiting_for)} parse",
        )


def check_run(data: Any) -> RunFileCheck:
    """Every problem of a manifest (already parsed from YAML/JSON) at once: its fields'
    (pydantic's), each misspelt field with the closest known name, and those across fields
    among the fields that parsed."""
    if not isinstance(data, dict):
        problem = SpecProblem("(document)", "must be a mapping")
        return RunFileCheck([problem], None, frozenset({"metadata", "spec"}))
    try:
        run = ParetoMergeRun.model_validate(data)
    except ValidationError as error:
        field_problems = [_problem(e) for e in error.errors()]
        spec, run, unknown = _salvaged_run(data)
    else:
        field_problems, spec, unknown = [], run.spec, frozenset()
    return RunFileCheck(field_problems + list(semantic_problems(spec, unknown)), run, unknown)


def _salvaged_run(data: dict[str, Any]) -> tuple[RunSpec, ParetoMergeRun | None, frozenset[str]]:
    """What parses of a manifest with bad fields: its spec (every section that parsed, bad
    fields at their defaults; a required section that did not parse is left out), the run
    when the metadata and every required section parsed, and the fields not known."""
    unknown: set[str] = set()
    metadata = _salvaged(ObjectMeta, data.get("metadata"), ("metadata",), unknown)
    spec_data = data.get("spec")
    if not isinstance(spec_data, dict):
        unknown.add("spec")
        spec_data = {}
    sections = {}
    for name, field in RunSpec.model_fields.items():
        key = field.alias or name
        if key not in spec_data:
            if field.is_required():
                unknown.add(f"spec.{key}")
            continue
        section = _salvaged(field.annotation, spec_data[key], ("spec", key), unknown)
        if section is not None:
            sections[name] = section
    spec = RunSpec.model_construct(**sections)
    complete = metadata is not None and all(
        name in sections for name, field in RunSpec.model_fields.items() if field.is_required()
    )
    run = (
        ParetoMergeRun.model_construct(
            api_version=API_VERSION, kind=KIND, metadata=metadata, spec=spec
        )
        if complete
        else None
    )
    return spec, run, frozenset(unknown)


def _salvaged(model: Any, data: Any, where: tuple[str, ...], unknown: set[str]) -> BaseModel | None:
    """``model`` validated from ``data`` less every key that fails (their defaults take
    their place), each added to ``unknown`` under its field name (``where`` is ``data``'s),
    a misspelt key by the field it suggests; ``None`` when ``data`` itself fails. A list
    item that fails takes its whole list (the items after it keep their indices)."""
    data = copy.deepcopy(data)
    while (errors := _errors(model, data)) is not None:
        failing = {_deepest_key(data, error["loc"]) for error in errors}
        if () in failing:
            unknown.add(_field_name(where))
            return None
        for error in errors:
            if error["type"] != "extra_forbidden":
                unknown.add(_field_name((*where, *_deepest_key(data, error["loc"]))))
            elif suggestion := _closest_field((*where, *error["loc"])):
                unknown.add(_field_name((*where, *error["loc"][:-1], suggestion)))
        for key_path in sorted(failing, key=len):
            _delete(data, key_path)
    return model.model_validate(data)


def _errors(model: type[BaseModel], data: Any) -> list[Any] | None:
    """Pydantic's errors of ``data`` as a ``model``; ``None`` when it is valid."""
    try:
        model.model_validate(data)
    except ValidationError as error:
        return error.errors()
    return None


def _deepest_key(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The path to the deepest mapping key of ``data`` along an error's ``loc`` (``()``:
    ``data`` itself). A missing field's path ends at the object that lacks it."""
    node, path, deepest = data, [], ()
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            deepest = tuple(path)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
        else:
            break
        node = node[part]
    return deepest


def _delete(data: Any, key_path: tuple[str | int, ...]) -> None:
    """Remove the key at ``key_path`` from ``data``, if a removal before has not already."""
    node = data
    for part in key_path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(key_path[-1], None)


def parse_run(data: Any, source: str = "run file") -> ParetoMergeRun:
    """Validate a manifest (already parsed from YAML/JSON) and return the typed run.

    Raises:
        SpecError: every problem found (:func:`check_run`), each naming its field.
    """
    checked = check_run(data)
    if checked.problems:
        raise SpecError(checked.problems, source)
    return checked.run


def _problem(error: Any) -> SpecProblem:
    """One pydantic error as a problem naming its field; an unknown field with the closest
    known name."""
    field = _field_name(error["loc"]) or "(document)"
    if error["type"] != "extra_forbidden":
        return SpecProblem(field, error["msg"].removeprefix("Value error, "))
    if field in REMOVED_FIELDS:
        return RemovedField(field, REMOVED_FIELDS[field])
    suggestion = _closest_field(error["loc"])
    if suggestion is not None:
        return SpecProblem(field, f"unknown field; did you mean {suggestion}?")
    known = ", ".join(_known_fields(error["loc"][:-1]))
    return SpecProblem(field, f"unknown field; the fields here are {known}")


def _closest_field(loc: tuple[str | int, ...]) -> str | None:
    """The known field (as written in files, camelCase) closest to the unknown one at
    ``loc``, if one is close enough to be a misspelling."""
    matches = difflib.get_close_matches(str(loc[-1]), _known_fields(loc[:-1]), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _known_fields(loc: tuple[str | int, ...]) -> list[str]:
    """The fields, camelCase, of the spec object at ``loc`` (from the manifest's root)."""
    model: Any = ParetoMergeRun
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field's type holds (``ModelRef`` of ``list[ModelRef]``, ``X`` of
    ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def load_run(path: str | Path) -> ParetoMergeRun:
    """Read and validate a run file (YAML or JSON)."""
    return parse_run(_read_manifest(path), str(path))


def check_run_file(path: str | Path) -> RunFileCheck:
    """Every problem of a run file (YAML or JSON) at once (:func:`check_run`).

    Raises:
        SpecError: the file cannot be read, or is not YAML.
    """
    return check_run(_read_manifest(path))


def load_started_run(path: str | Path) -> ParetoMergeRun:
    """Read the ``run.yaml`` a controller wrote into its run directory: the spec the run
    started with, every default filled in by the version that wrote it, so without the
    fields removed since (:data:`REMOVED_FIELDS`)."""
    data = _read_manifest(path)
    for field in REMOVED_FIELDS:
        *parents, name = field.split(".")
        node = data
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(name, None)
    return parse_run(data, str(path))


def _read_manifest(path: str | Path) -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpecError(
            [SpecProblem("(file)", f"cannot read {path}: {error}")], str(path)
        ) from None
    except yaml.YAMLError as error:
        raise SpecError([SpecProblem("(file)", f"not valid YAML: {error}")], str(path)) from None


def dump_run(run: ParetoMergeRun) -> dict[str, Any]:
    """The manifest as plain data with camelCase names and every default filled in."""
    return json.loads(run.model_dump_json(by_alias=True, exclude_none=True))


# --- resuming --------------------------------------------------------------------------------

#: Fields a started run may change and still resume: how much to search and how to run
#: it, never what its results mean (models, merge, search space, benchmarks, sampling).
RESUMABLE_EDITS = (
    "spec.search.budget",
    "spec.search.validation.budget",
    "spec.search.costBudget",
    "spec.execution",
    "spec.evaluation.concurrency",
    "spec.evaluation.timeoutSeconds",
    "spec.evaluation.endpoint.url",
    "spec.evaluation.endpoint.apiKeySecret",
)


def _leaves(data: Any, prefix: str) -> dict[str, Any]:
    """``{"spec.merge.method": "ties", ...}``: every non-mapping value by its field name."""
    if not isinstance(data, dict):
        return {prefix: data}
    return {
        name: value
        for key, item in data.items()
        for name, value in _leaves(item, f"{prefix}.{key}").items()
    }


def resume_conflicts(started: ParetoMergeRun, current: ParetoMergeRun) -> list[SpecProblem]:
    """The fields of ``current`` that differ from the spec a run ``started`` with and that
    its results depend on (everything but :data:`RESUMABLE_EDITS`), each with both values.
    An empty list: the run may resume under ``current``."""
    old = _leaves(dump_run(started)["spec"], "spec")
    new = _leaves(dump_run(current)["spec"], "spec")
    absent = "(not set)"
    return [
        SpecProblem(
            name,
            f"was {json.dumps(old.get(name, absent))} when the run started and is now "
            f"{json.dumps(new.get(name, absent))}; its results were made with the old value",
        )
        for name in sorted(old.keys() | new.keys())
        if old.get(name, absent) != new.get(name, absent)
        and not any(name == edit or name.startswith(f"{edit}.") for edit in RESUMABLE_EDITS)
    ]
