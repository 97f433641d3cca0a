"""Warnings of the search's surrogate libraries (gpytorch, linear_operator, botorch),
counted instead of printed.

A run fits many Gaussian processes: gpytorch adds jitter to a covariance that is not
quite positive definite and says so, botorch warns of inputs it rescales or of a fit
that stopped early. Each is expected and handled by the library itself; printed in the
middle of a run, they tell a user that something went wrong when nothing did. A run
counts them and says how many in one line; ``--verbose`` shows each.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

LIBRARIES = ("gpytorch", "linear_operator", "botorch")


def library_of(category: type[Warning]) -> str | None:
    """The surrogate library that defines ``category``, or ``None`` for any other."""
    library = category.__module__.partition(".")[0]
    return library if library in LIBRARIES else None


def _library_categories() -> list[type[Warning]]:
    """The libraries' own warning classes (bases included), each to be counted at every
    occurrence rather than once per line of code."""
    from botorch.exceptions.warnings import BotorchWarning
    from gpytorch.utils.warnings import GPInputWarning, OldVersionWarning
    from linear_operator.utils.warnings import NumericalWarning, PerformanceWarning

    return [BotorchWarning, GPInputWarning, OldVersionWarning, NumericalWarning, PerformanceWarning]


@dataclass
class SurrogateWarnings:
    """How many warnings of the surrogate's libraries a run raised."""

    count: int = 0

    def summary(self, verbose: bool) -> str | None:
        """The one line that says how many (``None`` when there were none)."""
        if not self.count:
            return None
        return f"{self.count} numerical warning(s) from the surrogate fit" + (
            "" if verbose else " (see --verbose)"
        )


@contextmanager
def surrogate_warnings_counted(
    show: Callable[[str], None] | None = None,
) -> Iterator[SurrogateWarnings]:
    """Inside the block, every warning of the surrogate's libraries is counted and, given
    ``show``, told to it as one line, never printed; any other warning is shown as
    before. Warnings are process-wide: the block must hold the code that fits the
    surrogate, in this thread."""
    counted = SurrogateWarnings()
    with warnings.catch_warnings():
        for category in _library_categories():
            warnings.filterwarnings("always", category=category)
        show_others = warnings.showwarning

        def count_or_show(message, category, filename, lineno, file=None, line=None) -> None:
            library = library_of(category)
            if library is None:
                show_others(message, category, filename, lineno, file, line)
                return
            counted.count += 1
            if show is not None:
                show(f"{library} {category.__name__}: {message}")

        warnings.showwarning = count_or_show
        yield counted
