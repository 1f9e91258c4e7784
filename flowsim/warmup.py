"""Warm-up and steady-state checks: MSER-5 truncation points on the daily series, warnings when the
warm-up looks too short for the system's queues, and when a queue grows through the window."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd


def mser5(series: np.ndarray) -> int:
    """MSER-5 truncation point (White 1997): the number of leading observations to delete.

    Batch means of 5 observations; choose the number of leading batches ``d`` (at most half of
    them) minimising ``sum_{i>d} (Y_i - mean_{>d})^2 / (b - d)^2``. Returns observations (5 d).
    """
    y = np.asarray(series, dtype=np.float64)
    b = y.size // 5
    if b < 4:
        return 0
    batches = y[: b * 5].reshape(b, 5).mean(axis=1)
    best, best_d = math.inf, 0
    for d in range(b // 2 + 1):
        rest = batches[d:]
        score = float(np.sum((rest - rest.mean()) ** 2)) / (b - d) ** 2
        if score < best:
            best, best_d = score, d
    return 5 * best_d


WARMUP_CHECKED = ("occupancy_mean", "delayed_mean")
"""The acute service's daily columns MSER-5 checks."""


def acute_service(daily_table: pd.DataFrame) -> str:
    """The (first) acute-role service's name in a daily table (its ``role`` column; a table
    without one, written before services had roles, names it ``acute``)."""
    return acute_services(daily_table)[0]


def acute_services(daily_table: pd.DataFrame) -> list[str]:
    """The acute-role services' names in a daily table (one per acute trust)."""
    if "role" in daily_table:
        found = daily_table.loc[daily_table["role"] == "acute", "service"]
        if len(found):
            return [str(s) for s in dict.fromkeys(found)]
    return ["acute"]


def warmup_check(daily_table: pd.DataFrame, warmup_days: float) -> list[str]:
    """Warnings where MSER-5 suggests a longer warm-up than the one used.

    MSER-5 is applied to each replication's daily series and the median truncation point is
    compared with the warm-up. (On the mean across replications the noise averages out and the
    seasonal pattern of admissions, which MSER-5 reads as bias, dominates.) Checked: acute
    occupancy and beds held by people ready to leave, the series every headline KPI rests on.
    Long-stay services started warm are not checked: their drift is slow by design. With no
    warm-up (a snapshot start, studying the path from today) there is nothing to check.
    """
    warnings: list[str] = []
    if warmup_days == 0:
        return warnings
    for scenario, grp in daily_table.groupby("scenario", sort=False):
        for service, column in itertools.product(acute_services(grp), WARMUP_CHECKED):
            rows = grp[grp["service"] == service]
            cuts = [mser5(rep[column].to_numpy()) for _, rep in rows.groupby("replication")]
            cut = float(np.median(cuts)) if cuts else 0.0
            if cut > warmup_days:
                warnings.append(
                    f"warm-up may be too short for {scenario}: MSER-5 on daily {service} "
                    f"{column} suggests deleting the first {cut:g} days (median over "
                    f"replications; warm-up is {warmup_days:g}); consider "
                    f"run.warmup_days={math.ceil(cut)}"
                )
    return warnings


GROWTH_DAYS = 30
"""A queue is compared over the first and the last this-many measured days."""


def growth_check(daily_table: pd.DataFrame, warmup_days: float) -> list[str]:
    """Warnings where a queue grows through the measured window: people at the front door waiting
    for an acute bed, or waiting (wherever they wait) to enter a service.

    Such a queue is what demand above capacity looks like: then the system has no steady state,
    and every total over the window depends on how long the window is. Flagged when, in the median
    replication, the queue's mean over the last ``GROWTH_DAYS`` measured days is more than twice
    its mean over the first ``GROWTH_DAYS`` and at least 10 people more (small queues and
    seasonal swings of a few people are not flagged). Windows shorter than three times
    ``GROWTH_DAYS`` are not checked.
    """
    warnings: list[str] = []
    for scenario, grp in daily_table.groupby("scenario", sort=False):
        measured = grp[grp["day"] >= warmup_days]
        days = np.sort(measured["day"].unique())
        if days.size < 3 * GROWTH_DAYS:
            continue
        first = measured["day"] < days[GROWTH_DAYS]
        last = measured["day"] >= days[-GROWTH_DAYS]
        acutes = acute_services(grp)
        for service in measured["service"].unique():
            if service in acutes and len(acutes) == 1:  # its waiting line is the front door's
                continue
            column = "occupancy_mean" if service == "front_door" else "waiting_mean"
            here = measured["service"] == service
            before = measured[here & first].groupby("replication")[column].mean()
            after = measured[here & last].groupby("replication")[column].mean()
            a, b = float(np.median(before)), float(np.median(after))
            if b > 2 * a and b - a >= 10:
                where = (
                    "for an acute bed (the front door)"
                    if service == "front_door"
                    else (f"for {service}")
                )
                warnings.append(
                    f"{scenario}: the queue {where} grows through the measured window, from "
                    f"{a:,.0f} waiting in its first {GROWTH_DAYS} days to {b:,.0f} in its last "
                    f"{GROWTH_DAYS} (medians over replications); if demand there exceeds capacity, "
                    "the system has no steady state and totals over the window depend on its "
                    "length (run.horizon_days)"
                )
    return warnings
