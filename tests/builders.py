"""Values the tests build again and again, in one place."""

from __future__ import annotations

import math

from paretomerge.results import BenchmarkScore


def benchmark_score(name: str, accuracy: float, mean_output_tokens: float, n: int = 30):
    """A :class:`BenchmarkScore` with the binomial standard error of ``accuracy`` over
    ``n`` questions, every output closing its think block."""
    return BenchmarkScore(
        name=name,
        accuracy=accuracy,
        accuracy_stderr=math.sqrt(accuracy * (1.0 - accuracy) / n),
        mean_output_tokens=mean_output_tokens,
        thinking_closed=1.0,
        n=n,
    )
