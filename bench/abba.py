"""A/B rounds in ABBA order, and the spread of their ratios: the benches' on/off comparisons.

One block runs A, B, B, A (A the baseline): a drift of the machine that is linear over the
block cancels in (B1 + B2) / (A1 + A2). Blocks repeat; the figure is the median of the block
ratios, with their interquartile range, their range, and a bootstrap 95% interval of the
median (resampled blocks, a fixed seed, so a run's figures are reproducible from its rounds).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ORDER = ("A", "B", "B", "A")
"""The rounds of one block."""


def block_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """B over A of one block (its two A rounds and two B rounds, costs: time per unit)."""
    return sum(b) / sum(a)


@dataclass(frozen=True)
class Spread:
    """The median of the block ratios and how far they spread."""

    blocks: int
    median: float
    q1: float
    q3: float
    low: float
    high: float
    ci_low: float
    ci_high: float
    """Bootstrap 95% interval of the median."""

    def within(self, bound: float) -> bool:
        """Whether the interval's upper end is at most `bound` (the cost shown within it)."""
        return self.ci_high <= bound

    def __str__(self) -> str:
        return (
            f"median {self.median:.3f}x (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}, "
            f"IQR {self.q1:.3f}-{self.q3:.3f}, range {self.low:.3f}-{self.high:.3f}, "
            f"{self.blocks} ABBA blocks)"
        )


def spread(ratios: Sequence[float], resamples: int = 4000, seed: int = 15) -> Spread:
    """The median of `ratios` with its interquartile range, range and bootstrap interval."""
    if not ratios:
        raise ValueError("no block ratios to summarise")
    values = sorted(ratios)
    if len(values) == 1:
        only = values[0]
        return Spread(1, only, only, only, only, only, only, only)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    chance = random.Random(seed)
    medians = sorted(
        statistics.median(chance.choices(values, k=len(values))) for _ in range(resamples)
    )
    return Spread(
        blocks=len(values),
        median=statistics.median(values),
        q1=q1,
        q3=q3,
        low=values[0],
        high=values[-1],
        ci_low=medians[int(0.025 * (resamples - 1))],
        ci_high=medians[int(0.975 * (resamples - 1))],
    )
