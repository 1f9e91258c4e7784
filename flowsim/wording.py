"""How numbers are written for readers of the summit pack and the printout: thousands
separated, money in GBP millions, rates in per cent, intervals and paired changes."""

from __future__ import annotations

import math


def fmt(x: float, unit: str = "") -> str:
    """A number as a reader sees it: thousands separated, GBP in millions, rates in per cent."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if unit == "%":
        return f"{100 * x:.1f}%"
    if unit == "GBP":
        if abs(x) >= 1e6:
            return f"GBP {x / 1e6:,.2f}m"
        return f"GBP {x:,.0f}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:,.1f}"


def median_text(r, unit: str = "") -> str:
    """The interval of a headline median: its 95% CI, or the range with its real coverage."""
    text = interval_text(r["median_ci_low"], r["median_ci_high"], unit)
    if r["median_coverage"] >= 0.95:
        return f"95% CI {text}"
    return f"range {text} ({r['median_coverage']:.0%} confidence)"


def interval_text(lo: float, hi: float, unit: str = "") -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "no interval"
    return f"{fmt(lo, unit)} to {fmt(hi, unit)}"


def change_text(x: float, unit: str = "") -> str:
    if math.isnan(x):
        return "n/a"
    if unit == "%":
        return f"{100 * x:+.1f} points"
    sign = "+" if x > 0 else ("-" if x < 0 else "")
    return sign + fmt(abs(x), unit)
