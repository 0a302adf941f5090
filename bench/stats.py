"""Ratios of rounds run side by side, and how far to trust them."""

from __future__ import annotations

import math
import statistics
from typing import Any

Figures = dict[str, Any]

# Student's t, two-sided 95%, by degrees of freedom: a handful of rounds is far from normal.
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def round_ratios(ours: list[Figures], floor: list[Figures]) -> list[float]:
    """Each round's ours / floor: the two of a round run back to back, so the machine's drift mostly cancels."""
    return [o["calls_per_s"] / f["calls_per_s"] for o, f in zip(ours, floor, strict=True)]


def ratio_spread(ratios: list[float]) -> float:
    """Half-width of a 95% confidence interval of the ratio, from the rounds' own ratios."""
    if len(ratios) < 2:
        return float("nan")
    return float(_T95.get(len(ratios) - 1, 1.96) * statistics.stdev(ratios) / math.sqrt(len(ratios)))


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
