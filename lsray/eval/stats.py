"""Paired comparisons over the same clips: is variant A better than B, and by how much?

Every claim lsray makes about an upgrade ("+ fused audio raises LSE-C", "the output beats keeping
the source mouth") compares two measurements of the *same* held-out clips, so the clip-to-clip
spread (some sentences are simply easier) cancels in the per-clip differences. This module gives
the one way the project reports such a difference: the mean of the per-clip differences with a
t confidence interval, and the two-sided Wilcoxon signed-rank p-value (no normality assumed; the
interval is for reading the size, the p-value for the claim), plus how many clips went each way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """Summary of per-clip differences ``a - b`` (pairs with a missing side dropped)."""

    n: int
    mean: float  # mean difference (nan when n == 0)
    ci_low: float  # two-sided t interval of the mean at ``confidence``
    ci_high: float
    p: float  # two-sided Wilcoxon signed-rank; 1.0 when every difference is 0, nan when n < 2
    wins: int  # clips where a > b
    losses: int  # clips where a < b
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def significant(self, alpha: float = 0.05) -> bool:
        """A > B with p < ``alpha`` (and a positive mean: the test is two-sided)."""
        return self.n >= 2 and self.mean > 0 and self.p < alpha

    def describe(self, digits: int = 3) -> str:
        """``+0.016 +- 0.005 (p 0.003, ahead on 50 of 80)``: the form README tables use."""
        if self.n == 0:
            return "-"
        return (f"{self.mean:+.{digits}f} +- {self.half_width:.{digits}f} (p {self.p:.2g}, ahead on "
                f"{self.wins} of {self.n})")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def paired_difference(a: Iterable[float | None], b: Iterable[float | None], confidence: float = 0.95) -> PairedDifference:
    """Per-item ``a[i] - b[i]`` over the items where both are finite numbers."""
    from scipy import stats

    pairs = [(float(x), float(y)) for x, y in zip(a, b, strict=True)
             if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]
    d = np.array([x - y for x, y in pairs], np.float64)  # (n,)
    n = len(d)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, 0, 0, confidence)
    mean = float(d.mean())
    if n < 2:
        return PairedDifference(n, mean, math.nan, math.nan, math.nan, int((d > 0).sum()), int((d < 0).sum()), confidence)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    p = 1.0 if not d.any() else float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedDifference(n, mean, mean - half, mean + half, p, int((d > 0).sum()), int((d < 0).sum()), confidence)
