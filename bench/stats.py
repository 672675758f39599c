"""Pure numbers: percentiles, latency summaries, growth exponents. No I/O, no clock."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks.

    Same definition as ``numpy.percentile(..., method="linear")``.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    fraction = position - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencySummary:
        if not samples_ms:
            raise ValueError("no latency samples")
        return cls(
            count=len(samples_ms),
            mean=sum(samples_ms) / len(samples_ms),
            p50=percentile(samples_ms, 50),
            p95=percentile(samples_ms, 95),
            p99=percentile(samples_ms, 99),
            max=float(max(samples_ms)),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is not positive."""
    if denominator <= 0:
        return None
    return numerator / denominator


def growth_exponents(sizes: Sequence[int], costs: Sequence[float]) -> list[float]:
    """Log-log slope between consecutive points: 1.0 is linear, 2.0 quadratic, 0 constant."""
    if len(sizes) != len(costs):
        raise ValueError("sizes and costs differ in length")
    slopes = []
    points = list(zip(sizes, costs, strict=True))
    for (n0, c0), (n1, c1) in itertools.pairwise(points):
        if n1 <= n0 or c0 <= 0 or c1 <= 0:
            raise ValueError(f"need growing sizes and positive costs, got {n0}->{n1}, {c0}->{c1}")
        slopes.append(math.log(c1 / c0) / math.log(n1 / n0))
    return slopes


#: Largest log-log slope still called linear (timing noise and cache effects included).
LINEAR_SLOPE_LIMIT = 1.2


def grows_linearly(sizes: Sequence[int], costs: Sequence[float]) -> bool:
    """True when no step grows faster than ``LINEAR_SLOPE_LIMIT`` (i.e. not worse than linear).

    Steps dominated by a fixed overhead have slopes well below 1; that is fine.
    """
    return all(slope <= LINEAR_SLOPE_LIMIT for slope in growth_exponents(sizes, costs))
