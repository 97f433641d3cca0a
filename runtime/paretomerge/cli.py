"""The `paretomerge` command line."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from paretomerge import __version__

if TYPE_CHECKING:  # imported where they are used: the command line starts fast
    from rich.table import Table

    from paretomerge.importance import ImportanceProfile
    from paretomerge.report import RunDirectory
    from paretomerge.results import BenchmarkScore
    from paretomerge.spec import ParetoMergeRun, RunFileCheck

app = typer.Typer(
    help=(
        "ParetoMerge finds the capability-efficiency Pareto set of merged LLMs: one merge "
        "weight per layer (or block), searched by multi-objective Bayesian optimisation."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts are plain: "[default: ...]" must print as written
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"paretomerge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """ParetoMerge command line."""


def _fail(error: Exception) -> typer.Exit:
    """Report a user-facing error on stderr; the caller raises the returned exit."""
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


def _parse_floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated numbers, got {text!r}", param_hint=option
        ) from None


BaseOption = Annotated[Path, typer.Option("--base", help="Base model directory.")]
RunFileArgument = Annotated[Path, typer.Argument(help="The ParetoMergeRun manifest (YAML).")]
VolumeOption = Annotated[
    Path | None,
    typer.Option(help="Directory the run's paths are relative to [default: the file's]."),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="Show each warning of the search's surrogate (gpytorch, botorch), not only "
        "their count.",
    ),
]
ExpertOption = Annotated[
    list[Path], typer.Option("--expert", help="Expert model directory (repeatable).")
]


@app.command()
def importance(
    base: BaseOption,
    expert: ExpertOption,
    out: Annotated[Path, typer.Option("--out", help="Profile JSON to write.")],
    plot: Annotated[
        Path | None,
        typer.Option(help="Heatmap PNG to write [default: the profile's path with .png]."),
    ] = None,
    blocks: Annotated[
        int, typer.Option(min=1, help="Blocks of the partition drawn (at most the layer count).")
    ] = 8,
    strategy: Annotated[
        str, typer.Option(help="Partition strategy: variance, balance, hybrid, uniform.")
    ] = "hybrid",
    alpha: Annotated[float, typer.Option(help="Hybrid partition: homogeneity weight.")] = 1.0,
    beta: Annotated[float, typer.Option(help="Hybrid partition: balance weight.")] = 0.005,
    activations: Annotated[
        bool,
        typer.Option(
            "--activations",
            help="Also measure the activation profile (each model runs once on the CPU) on "
            "the questions of --prompts or --run-file, and print both with the prior that "
            "combines them.",
        ),
    ] = False,
    prompts: Annotated[
        Path | None,
        typer.Option(help="JSONL file whose lines' 'question' are the activation prompts."),
    ] = None,
    run_file: Annotated[
        Path | None,
        typer.Option(
            help="Run file whose search questions are the activation prompts (as its run "
            "takes them; spec.search.prior gives the defaults of the two options below)."
        ),
    ] = None,
    volume: VolumeOption = None,
    num_prompts: Annotated[
        int | None, typer.Option(min=1, help="Activation prompts at most [default: 32].")
    ] = None,
    activation_weight: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="The activations' share of the prior [default: 0.5]."),
    ] = None,
) -> None:
    """Measure the per-layer task-vector profile of experts against a base (streamed)."""
    from paretomerge.checkpoint import CheckpointError
    from paretomerge.heatmap import plot_profile
    from paretomerge.importance import compute_profile, partition_profile

    if activations and (prompts is None) == (run_file is None):
        raise typer.BadParameter("give --prompts or --run-file", param_hint="--activations")
    if not activations and (prompts or run_file):
        raise typer.BadParameter("the prompts need --activations", param_hint="--activations")
    try:
        profile = compute_profile(base, expert)
        if activations:
            questions, weight = _activation_questions(
                prompts, run_file, volume, num_prompts, activation_weight
            )
            from paretomerge.activations import compute_activation_profile

            profile.activation = compute_activation_profile(base, expert, questions)
            profile.activation_weight = weight
        profile.partition = partition_profile(
            profile, min(blocks, profile.num_layers), strategy, alpha, beta
        )
    except (CheckpointError, OSError, ValueError) as error:
        raise _fail(error) from error
    out.parent.mkdir(parents=True, exist_ok=True)
    profile.write(out)
    plot_path = plot or out.with_suffix(".png")
    plot_profile(profile, plot_path)
    if profile.activation is not None:
        from rich.console import Console

        Console().print(_prior_table(profile))
    typer.echo(f"wrote {out} and {plot_path}")


def _activation_questions(
    prompts: Path | None,
    run_file: Path | None,
    volume: Path | None,
    num_prompts: int | None,
    activation_weight: float | None,
) -> tuple[list[str], float]:
    """The activation prompts and weight of ``importance``: as the run of ``run_file``
    takes them (its ``spec.search.prior`` giving what the options leave unset), else from
    the JSONL file ``prompts``.

    Raises:
        ValueError: an unreadable prompts file or run file, or one that gives no question.
    """
    from paretomerge.spec import PriorSpec

    if run_file is not None:
        from paretomerge.activations import calibration_questions
        from paretomerge.spec import load_run

        spec = load_run(run_file).spec
        prior = spec.search.prior
        root = (volume or run_file.parent).resolve()
        questions = calibration_questions(spec, root, num_prompts or prior.prompts)
    else:
        prior = PriorSpec()
        questions = _jsonl_questions(prompts, num_prompts or prior.prompts)
    weight = prior.activation_weight if activation_weight is None else activation_weight
    return questions, weight


def _jsonl_questions(path: Path, count: int) -> list[str]:
    """The ``question`` of the first ``count`` lines of a JSONL file."""
    import json

    lines = [line for line in path.read_text().splitlines() if line.strip()][:count]
    questions = []
    for number, line in enumerate(lines, start=1):
        try:
            questions.append(str(json.loads(line)["question"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path} line {number}: not a JSON object with a 'question'") from None
    if not questions:
        raise ValueError(f"{path}: no questions")
    return questions


def _prior_table(profile: ImportanceProfile) -> Table:
    """Per merge weight: the parameter profile, the activation profile and the prior that
    combines them (normalised, in [0, 1])."""
    from rich import box
    from rich.table import Table

    activation = profile.activation
    assert activation is not None
    table = Table(
        title=f"Prior: {1 - profile.activation_weight:.2f} parameter + "
        f"{profile.activation_weight:.2f} activation ({activation.prompts} prompts, "
        f"{activation.tokens} tokens)",
        box=box.SIMPLE_HEAD,
    )
    for column in (
        "layer",
        f"parameter ({profile.statistic})",
        f"activation ({activation.statistic})",
        "prior",
    ):
        table.add_column(column, justify="right", no_wrap=True)
    names = [str(layer) for layer in range(profile.num_layers)] + ["head"]
    rows = zip(
        names,
        [*profile.layers, profile.head],
        activation.merge_weight_profile,
        profile.prior,
        strict=True,
    )
    for name, parameter, change, prior in rows:
        table.add_row(name, f"{parameter:.4g}", f"{change:.4g}", f"{prior:.3f}")
    return table


@app.command()
def merge(
    base: BaseOption,
    expert: ExpertOption,
    method: Annotated[str, typer.Option("--method", help="Merge method (mergekit name).")],
    weights: Annotated[
        str,
        typer.Option(
            "--weights",
            help=(
                "Comma-separated weights: one per layer then one for embeddings, final norm "
                "and lm_head (L+1); one per block then the head's, with --block-starts "
                "(K+1); or a single model-level weight."
            ),
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output model directory (new or empty).")],
    block_starts: Annotated[
        str | None, typer.Option(help="First layer of every block, e.g. 0,9,18,27.")
    ] = None,
    density: Annotated[
        float | None, typer.Option(help="Sparsifying methods: fraction of entries kept.")
    ] = None,
    epsilon: Annotated[float | None, typer.Option(help="della, della_linear: epsilon.")] = None,
    gamma: Annotated[
        float | None, typer.Option(help="breadcrumbs, breadcrumbs_ties: outlier fraction.")
    ] = None,
    normalize: Annotated[
        bool, typer.Option("--normalize/--no-normalize", help="Divide by the weights' sum.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of DARE/DELLA's random drops.")] = 0,
    device: Annotated[str, typer.Option(help="Where to compute (cpu, cuda).")] = "cpu",
    shard_size: Annotated[int, typer.Option(min=1, help="Output shard size in bytes.")] = 1 << 30,
    async_write: Annotated[
        bool,
        typer.Option("--async-write/--no-async-write", help="Write shards in background threads."),
    ] = False,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")] = None,
) -> None:
    """Merge experts into a base with per-layer, per-block or model-level weights."""
    from paretomerge.checkpoint import Checkpoint, CheckpointError
    from paretomerge.merge import (
        ExecutionOptions,
        merge_models,
        plan_from_block_weights,
        plan_from_weights,
    )
    from paretomerge.partition import BlockPartition

    values = _parse_floats(weights, "--weights")
    parameters = {
        "density": density,
        "epsilon": epsilon,
        "gamma": gamma,
        "normalize": normalize,
        "seed": seed,
    }
    try:
        num_layers = Checkpoint(base).num_layers
        if block_starts is None:
            plan = plan_from_weights(base, expert, method, values, num_layers, **parameters)
        else:
            starts = [int(s) for s in _parse_floats(block_starts, "--block-starts")]
            partition = BlockPartition(starts=tuple(starts), num_layers=num_layers)
            plan = plan_from_block_weights(base, expert, method, values, partition, **parameters)
        options = ExecutionOptions(
            device=device, out_shard_bytes=shard_size, async_write=async_write, num_threads=threads
        )
        merge_models(plan, out, options)
    except (CheckpointError, ValueError, FileExistsError) as error:
        raise _fail(error) from error
    typer.echo(f"wrote {out}")


@app.command()
def run(
    run_file: RunFileArgument,
    volume: VolumeOption = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks at running tasks.")] = 1.0,
    verbose: VerboseOption = False,
) -> None:
    """Run a ParetoMergeRun on this machine (local executor); resumes an interrupted run."""
    run_dir = _run_locally(run_file, (volume or run_file.parent).resolve(), poll, verbose)
    _print_report(run_dir, [])


@app.command()
def validate(
    run_file: RunFileArgument,
    volume: VolumeOption = None,
) -> None:
    """Check a run file without running it: every problem at once, of its fields, across
    them, and of what it needs (models, data, engine, volume), as `run` checks it first."""
    from paretomerge.preflight import run_file_problems
    from paretomerge.spec import SpecError

    checked = _read_run_file(run_file)
    problems = run_file_problems(
        checked, (volume or run_file.parent).resolve(), tasks_path=_local_tasks_path()
    )
    if problems:
        raise _fail(SpecError(problems, str(run_file)))
    typer.echo(f"{run_file} is valid: its models, data, engine and volume are in order")


def _read_run_file(run_file: Path) -> RunFileCheck:
    """``run_file`` read through to its end; exit 1 when it cannot be read or parsed."""
    from paretomerge.spec import SpecError, check_run_file

    try:
        return check_run_file(run_file)
    except SpecError as error:
        raise _fail(error) from error


def _local_tasks_path() -> str:
    """The ``PATH`` of a local run's tasks (the local executor passes its own on)."""
    return os.environ.get("PATH", os.defpath)


def _checked_run(run_file: Path, volume: Path) -> ParetoMergeRun:
    """The run in ``run_file``. With a bad field, the exit names every problem at once:
    the fields', those across fields, and the preflight's on what parsed (a valid run's
    preflight is its controller's, which knows what a resumed run has left to do)."""
    from paretomerge.preflight import run_file_problems
    from paretomerge.spec import SpecError

    checked = _read_run_file(run_file)
    if checked.problems:
        problems = run_file_problems(checked, volume, tasks_path=_local_tasks_path())
        raise _fail(SpecError(problems, str(run_file)))
    return checked.run


def _task_threads(parallelism: int) -> dict[str, str]:
    """The environment that shares this machine's cores among the tasks running at once
    (torch and every OpenMP library read ``OMP_NUM_THREADS``): oversubscribed cores spend
    their time spinning. A value the user set is kept."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // parallelism))}


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived while a local run was going on."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise _Interrupted(signum)


@contextmanager
def _stop_signals_handled(handler: Callable | int) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` (a function, or ``signal.SIG_IGN``) while the
    context is open."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


def _run_locally(run_file: Path, volume: Path, poll: float, verbose: bool = False) -> Path:
    """Run ``run_file`` to its end; returns its run directory. The surrogate's warnings
    are counted in one line, each shown with ``verbose``."""
    manifest = _checked_run(run_file, volume)  # before the imports: a refusal comes fast

    from paretomerge.controller.loop import Controller
    from paretomerge.executors import LocalExecutor
    from paretomerge.progress import RunProgressBar
    from paretomerge.run_layout import RunLayout
    from paretomerge.surrogate_warnings import surrogate_warnings_counted

    execution = manifest.spec.execution
    executor = LocalExecutor(
        volume, execution.active_deadline_seconds, env=_task_threads(execution.parallelism)
    )
    progress = RunProgressBar(manifest)
    controller = Controller(
        manifest,
        volume,
        executor,
        on_update=progress.update,
        on_note=progress.note,
        poll_seconds=poll,
    )
    if (refused := controller.refused_change()) is not None:
        raise _fail(
            RuntimeError(
                f"run {manifest.name} refused the change and is still {refused.phase} (its "
                f"checkpoint untouched): {refused.reason}"
            )
        )
    try:
        with (
            _stop_signals_handled(_raise_interrupted),
            progress,
            surrogate_warnings_counted(progress.note if verbose else None) as warned,
        ):
            try:
                state = controller.run_to_end()
            finally:
                # A second Ctrl-C must not cut the cleanup short.
                with _stop_signals_handled(signal.SIG_IGN):
                    executor.close()  # every task and model server this run started
            if summary := warned.summary(verbose):
                progress.note(summary)
    except _Interrupted as interrupted:
        # Every result so far is in the checkpoint; the next run adopts or restarts the rest.
        typer.echo(f"interrupted ({interrupted}): run the same command to resume", err=True)
        raise typer.Exit(code=128 + interrupted.signum) from None
    files = RunLayout.of(manifest).on(volume)
    if state.phase != "Succeeded":
        # Every finished evaluation is in the checkpoint: after a fix, the same command
        # retries what failed.
        raise _fail(
            RuntimeError(
                f"run {manifest.name} {state.phase}: {state.message}\nFix the cause and run "
                "the same command again: finished evaluations are kept, what failed runs again"
            )
        )
    return files.root


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option(help="Directory for the models, the run files and the runs.")
    ] = Path("paretomerge-demo"),
    budget: Annotated[
        int, typer.Option(min=2, help="Candidate merges to evaluate, in each of the two runs.")
    ] = 12,
    parallelism: Annotated[int, typer.Option(min=1, help="Candidates evaluated at once.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the models, the data and the search.")] = 0,
    limit: Annotated[
        int, typer.Option(min=1, max=40, help="Questions per evaluation (of 40).")
    ] = 24,
    verbose: VerboseOption = False,
) -> None:
    """Why per-layer merging matters, on this CPU: a tiny pair, two real searches, a report.

    Trains the pair once (about 5 CPU-minutes; later runs reuse it), then runs a
    per-layer search and a model-level sweep of the same budget like `run`: importance
    profile, anchors, and candidates merged by mergekit and evaluated through evalscope on
    the built-in transformers server. Prints both fronts and writes OUT/report.html; the
    run directories are OUT/runs/demo and OUT/runs/demo-model-level.
    """
    from paretomerge.demo.runner import REPORT_FILE, prepare_demo
    from paretomerge.progress import PairTrainingProgress

    with PairTrainingProgress() as training:
        runs = prepare_demo(
            out, budget, parallelism, seed, limit, progress=training.note, on_step=training.step
        )
    volume = out.resolve()
    run_dirs = []
    for run_file in (runs.search, runs.baseline):
        typer.echo(f"run file: {run_file}")
        run_dirs.append(_run_locally(run_file, volume, poll=0.5, verbose=verbose))
    _print_report(run_dirs[0], run_dirs[1:], html=out / REPORT_FILE)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/NAME on its volume).")],
    baseline: Annotated[
        list[Path] | None,
        typer.Option(help="Run directory of a baseline (e.g. model-level) run to overlay."),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a self-contained HTML report to this file."),
    ] = None,
) -> None:
    """Print the Pareto set of a run and write its plots (and an HTML report)."""
    _print_report(run_dir, baseline or [], html)


def _print_report(run_dir: Path, baselines: list[Path], html: Path | None = None) -> None:
    """Print the front of ``run_dir`` and of each baseline with their hypervolumes, write
    the plots (and, given ``html``, the HTML report)."""
    from rich.console import Console

    from paretomerge.controller.cost_budget import budget_use
    from paretomerge.report import RunDirectory, check_comparable, write_html, write_plots
    from paretomerge.run_layout import PARETO_FILE

    try:
        directory = RunDirectory.open(run_dir)
        others = [RunDirectory.open(path) for path in baselines]
        check_comparable(directory, others)
    except (FileNotFoundError, ValueError) as error:
        raise _fail(error) from error
    console = Console()
    for run in (directory, *others):
        console.print(_front_table(run))
        console.print(_raw_scores_table(run))
    for run in (directory, *others):
        console.print(
            f"{run.run.name}: {run.state.count('succeeded')} evaluated, "
            + (f"{screened} screened out, " if (screened := run.state.count("screened")) else "")
            + f"{run.state.count('failed')} failed; front of {len(run.front())}, hypervolume "
            f"{run.hypervolume_text()}",
            markup=False,
            soft_wrap=True,  # one line, whatever the terminal's width: scripts read it
        )
    for run in (directory, *others):
        cost, anchors = run.state.cost, run.state.anchor_cost
        console.print(
            f"{run.run.name} cost: {cost.evaluations} evaluation(s), {cost.answers} answers, "
            f"{cost.output_tokens} output tokens; merge {cost.merge_seconds:.1f} s, server "
            f"start {cost.serve_seconds:.1f} s, generation {cost.generate_seconds:.1f} s; "
            f"{cost.gpu_seconds:.1f} GPU-seconds (anchors apart: {anchors.output_tokens} "
            f"output tokens, {anchors.gpu_seconds:.1f} GPU-seconds)"
            + (f"; cost budget: {used}" if (used := budget_use(run.state)) else ""),
            markup=False,
            soft_wrap=True,
        )
    state = directory.state
    succeeded, points = state.count("succeeded"), len(directory.front())
    if succeeded > points:
        console.print(
            f"{points} point(s) from {succeeded} merges: merges whose values cannot be told "
            f"from a point's within their uncertainty share its row (+N; {PARETO_FILE}'s "
            "indistinguishable_from names them), and merges that the base or the expert "
            "match or beat in both objectives within it are not listed"
        )
    if state.phase != "Succeeded" and state.message:
        console.print(f"run {state.phase}: {state.message}", markup=False)
    for candidate in state.candidates:
        if candidate.status == "failed":
            reason = candidate.reasons[-1].splitlines()[0] if candidate.reasons else "unknown"
            console.print(f"{candidate.id} failed: {reason}", markup=False)
    plots = write_plots(directory, others) if succeeded else []
    for path in plots:
        console.print(f"wrote {path}", markup=False)
    if html is not None:
        console.print(f"wrote {write_html(directory, others, plots, html)}", markup=False)
    present = [path.name for path in directory.files.artifacts if path.exists()]
    console.print(
        f"artifacts in {directory.path}: {', '.join(present) or 'none yet'}", markup=False
    )
    # The last line: what the run claims, with how sure it is.
    console.print(
        f"{directory.run.name}: hypervolume {directory.hypervolume_text()}",
        markup=False,
        soft_wrap=True,
    )


def _front_table(directory: RunDirectory) -> Table:
    """The run's front as a rich table that fits 80 columns: point, candidate (``+N``: the
    merges listed with it), ``f1`` and ``f2`` ± their standard deviations when the run
    reports them, the weights' mean and range; the anchors last. The raw scores are in
    :func:`_raw_scores_table`, one row per benchmark, whatever their number."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from paretomerge.report import plus_minus

    state = directory.state
    # Bracketed text is rich markup unless escaped ("[min, max]" would vanish).
    table = Table(
        title=escape(f"{directory.run.name}: Pareto set ({state.phase})"), box=box.SIMPLE_HEAD
    )
    for column in ("point", "candidate", "f1", "f2", escape("weights\nmean [min, max]")):
        table.add_column(column, justify="right", no_wrap=True)
    space = directory.space()
    for member in directory.front():
        candidate = directory.candidate(member)
        weights = candidate.variables[: space.num_weights]
        alike = len(member.indistinguishable_from)
        table.add_row(
            str(member.point),
            candidate.id + (f" (+{alike})" if alike else ""),
            *(
                plus_minus(value, None if member.std is None else std)
                for value, std in zip(member.objectives, member.std or (0.0, 0.0), strict=True)
            ),
            escape(f"{sum(weights) / len(weights):.2f} [{min(weights):.2f}, {max(weights):.2f}]"),
        )
    for role in directory.state.anchors:
        objectives = ("0.000", "1.000") if role == "base" else ("1.000", "0.000")
        table.add_row(role, "(anchor)", *objectives, "")
    return table


# The widest benchmark name the raw scores' table shows (longer ones end in an ellipsis).
BENCHMARK_NAME_WIDTH = 24


def _raw_scores_table(directory: RunDirectory) -> Table:
    """Each front member's and anchor's raw scores, one row per benchmark: accuracy and
    mean output tokens ± their standard errors (80 columns, whatever the benchmarks)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    benchmarks = directory.run.spec.objectives.names
    table = Table(title=escape(f"{directory.run.name}: raw scores"), box=box.SIMPLE_HEAD)
    table.add_column("point", justify="right", no_wrap=True)
    table.add_column("benchmark", no_wrap=True, max_width=BENCHMARK_NAME_WIDTH, overflow="ellipsis")
    for column in ("accuracy", "tokens"):
        table.add_column(column, justify="right", no_wrap=True)
    rows = [(str(m.point), directory.candidate(m).scores) for m in directory.front()]
    rows += [(role, anchor.scores) for role, anchor in directory.state.anchors.items()]
    for label, scores in rows:
        for name in benchmarks:
            table.add_row(label, escape(name), *_score_cells(scores[name]))
    return table


def _score_cells(score: BenchmarkScore) -> tuple[str, str]:
    """Accuracy and mean output tokens of one benchmark, ± their standard errors."""
    from paretomerge.report import plus_minus

    return (
        plus_minus(score.accuracy, score.accuracy_stderr),
        plus_minus(score.mean_output_tokens, score.mean_output_tokens_stderr, 1),
    )


@app.command()
def materialize(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
    point: Annotated[int, typer.Option(help="Row of pareto.csv (its point column).")],
    out: Annotated[Path, typer.Option(help="Model directory to write (new or empty).")],
) -> None:
    """Re-create a member of the Pareto set as a model directory."""
    from paretomerge.checkpoint import CheckpointError
    from paretomerge.merge import merge_models
    from paretomerge.report import RunDirectory

    try:
        directory = RunDirectory.open(run_dir)
        title = f"{directory.run.name}: Pareto point {point}"
        merge_models(directory.member_plan(point), out, title=title)
    except (FileNotFoundError, FileExistsError, IndexError, CheckpointError, ValueError) as error:
        raise _fail(error) from error
    typer.echo(f"wrote {out}")


@app.command()
def crd() -> None:
    """Print the ParetoMergeRun CustomResourceDefinition (generated from the run spec)."""
    from paretomerge.k8s.crd import render_crd

    typer.echo(render_crd(), nl=False)


@app.command()
def controller(
    run: Annotated[str, typer.Option("--run", help="The ParetoMergeRun, as NAMESPACE/NAME.")],
    volume: Annotated[
        Path, typer.Option(help="Where the run's volume is mounted in this pod.")
    ] = Path("/data"),
    check_only: Annotated[
        bool,
        typer.Option(
            "--check-only",
            help="Only check a run refused for its spec, on its volume too: every problem "
            "into its status, nothing started.",
        ),
    ] = False,
) -> None:
    """Drive a ParetoMergeRun on Kubernetes: candidates as Jobs, progress in its status
    (with --check-only: a run refused for its spec, every problem into its status)."""
    from paretomerge.k8s.runner import check_refused_run, run_controller
    from paretomerge.spec import SpecError

    namespace, _, name = run.partition("/")
    if not namespace or not name:
        raise typer.BadParameter("expected NAMESPACE/NAME", param_hint="--run")
    try:
        if check_only:
            problems = check_refused_run(namespace, name, volume)
            outcome = f"refused: {len(problems)} problem(s), each in its status"
        else:
            state = run_controller(namespace, name, volume)
            outcome = f"{state.phase}: {state.message}"
    except (SpecError, LookupError) as error:
        raise _fail(error) from error
    # A run that ended Failed, or was refused, is an outcome told in its status: the pod
    # must not restart.
    typer.echo(f"run {run} {outcome}")


@app.command()
def task(
    task_file: Annotated[Path, typer.Argument(help="task.json written by a controller.")],
    volume: Annotated[Path, typer.Option(help="Local path of the run's volume.")],
    step: Annotated[
        str,
        typer.Option(
            # --stage: what the Jobs of earlier versions pass.
            "--step",
            "--stage",
            help="merge, evaluate or all (Kubernetes runs the two apart).",
        ),
    ] = "all",
) -> None:
    """Carry out one task of a run (what local subprocesses and candidate Jobs run)."""
    from paretomerge.tasks import TaskFailure, run_task

    if step not in ("merge", "evaluate", "all"):
        raise typer.BadParameter("expected merge, evaluate or all", param_hint="--step")
    # Stopped from outside (a deadline, an interrupted run, a deleted pod): unwind, so that
    # the model server is stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        run_task(task_file, volume, step)
    except TaskFailure as error:
        raise _fail(error) from error


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@app.command("search-demo")
def search_demo(
    strategy: Annotated[str, typer.Option(help="Strategy to demonstrate.")] = "coarse-to-fine",
    baseline: Annotated[str, typer.Option(help="Strategy to compare with.")] = "model-level",
    budget: Annotated[int, typer.Option(min=8, help="Evaluations per strategy.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Search a synthetic 36-layer merge landscape (no model, no GP needed) and compare."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from paretomerge.controller.objectives import format_hypervolume
    from paretomerge.search import hypervolume, optimize
    from paretomerge.search.problems import LayerMergeLandscape

    console = Console()
    landscape = LayerMergeLandscape(seed=seed)
    ref_point = np.array([-0.2, -0.2])
    console.print(
        f"Synthetic merge landscape: {landscape.num_layers} layers + head, noisy objectives "
        "(f1 capability, f2 brevity; base = (0, 1), expert = (1, 0)), reference point (-0.2, -0.2)."
    )
    results = {}
    for name in dict.fromkeys([strategy, baseline]):
        with console.status(f"searching with {name} ({budget} evaluations)..."):
            try:
                results[name] = optimize(
                    landscape,
                    dim=landscape.dim,
                    strategy=name,
                    budget=budget,
                    layer_profile=landscape.profile,
                    num_blocks=8,
                    initial_solutions=[0.55, 0.8],
                    seed=seed,
                )
            except ValueError as error:
                raise _fail(error) from None
        true_hv = hypervolume(landscape.true_values(results[name].X), ref_point)
        console.print(
            f"{name}: hypervolume {format_hypervolume(true_hv)} "
            "(noiseless values of its evaluations)"
        )

    result = results[strategy]
    table = Table(title=f"Pareto set found by {strategy}")
    for column in ("#", "f1", "f2", "mean weight", "weights (first 8 layers)"):
        table.add_column(column)
    order = np.argsort(-result.pareto_Y[:, 0])
    for i in order:
        x, y = result.pareto_X[i], result.pareto_Y[i]
        table.add_row(
            str(i),
            f"{y[0]:.3f}",
            f"{y[1]:.3f}",
            f"{x.mean():.2f}",
            " ".join(f"{w:.2f}" for w in x[:8]),
        )
    console.print(table)


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory to evaluate.")],
    run: Annotated[Path, typer.Option("--run", help="Run file (ParetoMergeRun YAML).")],
    volume: Annotated[Path, typer.Option("--volume", help="The run's volume (data paths).")],
    role: Annotated[
        str, typer.Option("--role", help="base (baseSampling), expert or merged (sampling).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Result JSON to write.")],
    work_dir: Annotated[
        Path | None,
        typer.Option(help="Server log and evalscope outputs [default: next to --out]."),
    ] = None,
) -> None:
    """Serve a model and score it on the run's benchmarks (accuracy, output tokens)."""
    from paretomerge.evaluate import (
        BenchmarkDataError,
        EvalscopeOutputError,
        ServingError,
        evaluate_model,
    )
    from paretomerge.spec import SpecError, load_run

    if role not in ("base", "expert", "merged"):
        raise typer.BadParameter(
            f"expected base, expert or merged, got {role!r}", param_hint="--role"
        )
    try:
        spec = load_run(run).spec
        evaluation = spec.evaluation
        result = evaluate_model(
            model_dir,
            evaluation=evaluation,
            objectives=spec.objectives,
            sampling=evaluation.base_sampling if role == "base" else evaluation.sampling,
            volume=volume,
            work_dir=work_dir or out.with_name(f"{out.stem}-work"),
        )
    except (SpecError, BenchmarkDataError, ServingError, EvalscopeOutputError) as error:
        raise _fail(error) from error
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.model_dump_json(indent=2) + "\n")
    for score in result.scores.values():
        typer.echo(
            f"{score.name}: accuracy {score.accuracy:.3f} ± {score.accuracy_stderr:.3f}, "
            f"{score.mean_output_tokens:.1f} output tokens, n={score.n}"
        )
    typer.echo(f"wrote {out}")
