"""The `paretomerge` command line."""

from __future__ import annotations

import typer

from paretomerge import __version__

app = typer.Typer(
    help=(
        "ParetoMerge finds the capability-efficiency Pareto set of merged LLMs: one merge "
        "weight per layer (or block), searched by multi-objective Bayesian optimisation."
    ),
    no_args_is_help=True,
    add_completion=False,
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
