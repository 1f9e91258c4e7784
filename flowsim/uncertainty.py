"""Uncertainty across replications: what every number a user sees carries.

Means with Student t intervals (cut where a quantity cannot go), KPIs pooled per patient with
ratio-estimator intervals, medians with distribution-free intervals, the rule that tells when a
few replications drive a mean, and the summary table (``summary.csv``) built from them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from flowsim.config import DRD_BANDS, DRD_SCOPES

# -- summaries --------------------------------------------------------------------------------


def t_quantile(level: float, df: int) -> float:
    """The two-sided Student t quantile for a ``level`` interval (scipy.special's inverse of the
    t distribution: the same numbers as ``scipy.stats.t.ppf`` without importing scipy.stats,
    which takes most of a second at every start)."""
    return float(special.stdtrit(df, 0.5 + level / 2))


def interval(
    values: np.ndarray, level: float = 0.95, lower: float = -math.inf
) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval across replications (NaN bounds when n < 2).

    ``lower`` is the least value the quantity can take (0 for a count, a time or a cost): the
    interval is cut there, as a few replications of a skewed KPI can otherwise give a negative
    bound for something that cannot be negative. Cutting an interval to the values the quantity
    can take does not lower its coverage.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = t_quantile(level, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, max(mean - half, lower), mean + half


def _pooled_kpis() -> dict[str, str]:
    out = {"mean_delay_days": "delayed_patients", "home_at_91_days_rate": "home_checks"}
    for scope in DRD_SCOPES:
        for name, _ in DRD_BANDS:
            out[f"drd_days_{name}_share{scope}"] = f"drd_discharges{scope}"
        out[f"drd_mean_days{scope}"] = f"drd_discharges{scope}"
        out[f"drd_mean_days_delayed{scope}"] = f"drd_delayed_discharges{scope}"
    return out


POOLED = _pooled_kpis()
ORG_POOLED = {
    "mean_delay_days": "delayed_patients",
    "home_at_91_days_rate": "home_checks",
    **{k: w for k, w in _pooled_kpis().items() if k.startswith("drd_")},
}
"""An organisation's per-patient KPIs (``org_<name>_<kpi>``) and their patients, pooled as
``POOLED``."""


def pooled_weight(kpi: str) -> str | None:
    """The patients a per-patient KPI is pooled over (``POOLED``, ``ORG_POOLED``), or None."""
    if kpi in POOLED:
        return POOLED[kpi]
    if kpi.startswith("org_"):
        for stem, weight in ORG_POOLED.items():
            if kpi.endswith(f"_{stem}"):
                return kpi[: -len(stem)] + weight
    return None
"""KPIs that are a mean or a share per patient, reported pooled over replications: KPI -> its
patients (``mean_delay_days`` over ``delayed_patients``; ``home_at_91_days_rate`` over
``home_checks``, the people whose 91-day check fell in the window; the discharge ready date shares
and means, ``results.discharge_ready``, over their discharges).

``mean_delay_days`` of one replication is the mean delay of its delayed patients: undefined (NaN)
in a replication with none. Averaging replications would drop those and weigh a replication of 3
delayed patients as much as one of 3,000. The summary and the comparison report it **pooled per
patient** instead: every delayed patient of every replication counts once (total delay / number
of delayed patients), so it is defined whenever any replication has a delayed patient. Its 95%
interval is the ratio estimator's (delta method over replications, Student t), as replications
are the independent units."""


def pooled(values: np.ndarray, weights: np.ndarray, level: float = 0.95) -> tuple[float, ...]:
    """Pooled per-patient mean of per-replication means ``values`` over ``weights`` patients,
    with its delta-method interval: ``(ratio, low, high)``; NaN when there is no patient."""
    w = np.asarray(weights, dtype=np.float64)
    y = np.where(w > 0, np.nan_to_num(np.asarray(values, dtype=np.float64)) * w, 0.0)
    n, total = w.size, w.sum()
    if n == 0 or total <= 0:
        return math.nan, math.nan, math.nan
    ratio = float(y.sum() / total)
    if n < 2:
        return ratio, math.nan, math.nan
    se = float(np.std(y - ratio * w, ddof=1) / (math.sqrt(n) * w.mean()))
    half = t_quantile(level, n - 1) * se
    return ratio, max(ratio - half, 0.0), ratio + half


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, KPI): mean, 95% CI, p5/p50/p95, n replications. Every KPI is a
    count, a time, a rate or a cost, none of which can be negative: intervals stop at 0. The
    KPIs of ``POOLED`` are pooled per patient (their quantiles are of the replications that
    have a value; their ``n`` counts every replication)."""
    rows = []
    kpi_cols = [c for c in runs.columns if c not in ("scenario", "replication")]
    for scenario, grp in runs.groupby("scenario", sort=False):
        for k in kpi_cols:
            x = grp[k].to_numpy(dtype=np.float64)
            mean, lo, hi = interval(x, lower=0.0)
            n = int((~np.isnan(x)).sum())
            if pooled_weight(k) in grp:
                mean, lo, hi = pooled(x, grp[pooled_weight(k)].to_numpy(dtype=np.float64))
                n = len(x)
            finite = x[~np.isnan(x)]
            q = np.percentile(finite, [5, 50, 95]) if finite.size else [math.nan] * 3
            rows.append(
                {
                    "scenario": scenario,
                    "kpi": k,
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                    "p5": q[0],
                    "p50": q[1],
                    "p95": q[2],
                    "n": n,
                }
            )
    return pd.DataFrame(rows)


# -- a mean driven by a few replications --------------------------------------------------------

FEW_SHARE = 0.5
"""``driven_by_few``: a few replications holding more than this share of the total drive the
mean."""


def few(n: int) -> int:
    """How many of n replications are "a few": 15%, at least one (3 of 20, 1 of 10)."""
    return max(1, 3 * n // 20)


def driven_by_few(values) -> int:
    """How many replications drive the mean of a KPI: 0 when the mean is a fair headline.

    The rule: with n >= 3 replications of a quantity that cannot be negative, the mean is driven
    by a few when the largest ``few(n)`` values (15%, at least one: 3 of 20) hold more than half
    of the total. The answer is then the least number of largest values that hold more than
    half (the replications the printout names). Why this rule:

    - it is a share, free of units and scale: one threshold serves hours, days and pounds, and it
      is a statement about these replications that a reader can check in runs.parquet;
    - a fair mean has each replication carry about 1/n of the total; here 15% of them carry over
      half. Over many replications the top 15% of an exponential KPI (mean 1.4x its median:
      skewed but well behaved) hold 44%, so it does not fire (in about 1 run in 10 of 20
      replications it does, and then it is true of those 20); a lognormal KPI fires once its
      sigma exceeds 1.04, a mean over 1.7x its median. The usual KPIs (delayed bed days,
      occupancy, cost) differ by a few per cent between replications and never fire. The case
      that asked for it, boarding hours whose front door overflows in 3 of 20 replications
      (each above 200,000; mean 45,916, median 1,424), does;
    - a median of 0 (nobody boards in most replications) is no problem, unlike ratios such as
      mean / median or max / median, which would also need a second threshold;
    - with 3 to 13 replications it asks whether the largest alone outweighs all the others; with
      fewer than 3 the median tells nothing the mean does not (with 2 they are equal).

    Negative, infinite or all-zero values: 0 (the rule is about shares of a non-negative total).
    """
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])[::-1]
    if x.size < 3 or not np.isfinite(x).all() or x[-1] < 0 or x.sum() <= 0:
        return 0
    held = np.cumsum(x[: few(x.size)]) / x.sum()
    return int(np.argmax(held > FEW_SHARE)) + 1 if held[-1] > FEW_SHARE else 0


def median_interval(values, level: float = 0.95) -> tuple[float, float, float, float]:
    """The median and a distribution-free interval for it: (median, low, high, coverage).

    Of n replications, the number below the true median is Binomial(n, 1/2), so the sorted
    values' [x_(l), x_(n+1-l)] holds it with probability P(l <= B <= n - l) (at least that with
    ties). l is the largest rank giving ``level``; when even the range (l = 1, coverage
    1 - 2^(1-n)) falls short (n < 6 for 95%), it is the range, with its real coverage, which the
    reader must be told. NaN bounds with fewer than 2 values.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    if n < 2:
        return float(x[0]), math.nan, math.nan, math.nan

    def coverage(rank: int) -> float:  # P(rank <= B <= n - rank), B ~ Binomial(n, 1/2)
        return sum(math.comb(n, i) for i in range(rank, n - rank + 1)) / 2**n

    rank = 1
    while rank + 1 <= n // 2 and coverage(rank + 1) >= level:
        rank += 1
    return float(np.median(x)), float(x[rank - 1]), float(x[n - rank]), coverage(rank)


WHY_FEW = {"boarding_hours": "In some replications the front door overflows"}
"""What makes a few replications far larger than the rest, where it is known."""


def few_sentence(label: str, values, fmt, level: float = 0.95) -> str:
    """The plain sentence under a KPI whose mean a few replications drive (``driven_by_few``):
    who drives it, that the median is shown, and the interval's coverage when below ``level``.
    ``fmt`` formats a number as the caller shows it."""
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])[::-1]
    m = driven_by_few(x)
    share = x[:m].sum() / x.sum()
    if m == 1:
        who = f"one of {x.size} replications ({fmt(x[0])}), which holds"
    else:
        e = 10.0 ** (math.floor(math.log10(x[m - 1])) - 1)  # two significant figures, down
        least = math.floor(x[m - 1] / e + 1e-9) * e
        who = f"{m} of {x.size} replications (each {fmt(least)} or more), which hold"
    text = (
        f"{label}: the mean ({fmt(float(x.mean()))}) is driven by {who} {share:.0%} of the "
        "total; the median is shown"
    )
    _, lo, hi, cover = median_interval(x, level)
    if cover < level:
        text += (
            f"; with {x.size} replications, the range shown ({fmt(lo)} to {fmt(hi)}) holds the "
            f"median with only {cover:.0%} confidence"
        )
    return text + "."
