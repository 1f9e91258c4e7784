"""A system's observed data for calibration: the targets CSV format, its validation, and the same
measures computed from the model's daily table.

The format (one row per period and measure; documented in ``calibration/targets/README.md``)::

    period_start,period,measure,value,unit
    2025-10-06,week,admissions,805,patients
    2025-10-06,week,acute_occupancy,675.2,beds

``period`` is ``week`` (7 days from ``period_start``) or ``month`` (a calendar month;
``period_start`` its first day). Each measure's periods must follow one another with no gap.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim import warmup
from flowsim.config import PATHWAYS, REASONS, RESPONSIBLE, ConfigError

COUNT = "count"
MEAN = "mean"
MEASURES: dict[str, tuple[str, str, str]] = {
    "admissions": ("patients", COUNT, "acute admissions that start in the period"),
    "acute_occupancy": ("beds", MEAN, "mean occupied acute beds"),
    "ready_to_leave": ("beds", MEAN, "mean acute beds held by people ready to leave (NCTR)"),
    "delayed_days": ("bed_days", COUNT, "acute bed days of people ready to leave"),
    **{
        f"delayed_days_{r}": ("bed_days", COUNT, f"delayed bed days, DTOC reason {r}")
        for r in REASONS
    },
    **{
        f"delayed_days_{o}": ("bed_days", COUNT, f"delayed bed days, responsible: {o}")
        for o in RESPONSIBLE
    },
    **{
        f"discharges_{p}": ("patients", COUNT, f"acute stays ended alive on pathway {p}")
        for p in PATHWAYS
    },
}
"""measure -> (unit, count or mean over the period's days, meaning). Also accepted:
``<service>_occupancy`` (places, mean occupied places of a downstream service) and
``<service>_exits_<where>`` (patients leaving a service in the period for ``home``, ``death``,
``readmission`` or another service: e.g. ``reablement_exits_home``, reablement outcomes)."""
COLUMNS = ("period_start", "period", "measure", "value", "unit")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")


@dataclass
class Targets:
    """Validated observations: one row per (measure, period), ``start_day``/``end_day`` counted
    from the system's ``start_date`` once placed with :func:`place`."""

    table: pd.DataFrame
    path: Path


def unit(measure: str) -> tuple[str, str] | None:
    """``(unit, kind)`` of a measure a targets file may name (a count or a mean), or None for
    a measure the model does not make."""
    if measure in MEASURES:
        return MEASURES[measure][0], MEASURES[measure][1]
    if "_exits_" in measure:
        return "patients", COUNT
    if measure.endswith("_occupancy"):
        return "places", MEAN
    return None


def _fail(path: Path, line: int | None, column: str, rule: str) -> None:
    where = f", line {line}" if line is not None else ""
    raise ConfigError(f"{path}{where}, column {column}: {rule}")


def read(path: str | Path) -> Targets:
    """Read and check a targets CSV; errors name the file, the column and the first bad line.

    Handled: a UTF-8 byte-order mark; thousands separators (``1,234``). Rejected: missing or
    unknown columns, bad dates, unknown periods or measures, wrong units, non-numbers, negative
    values, duplicate (period, measure) rows, a gap in a measure's periods, mixed period kinds.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the targets file ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as CSV (UTF-8)") from None
    if not rows:
        raise ConfigError(f"{path}: empty file; expected the header {','.join(COLUMNS)}")
    header = [h.strip().lower() for h in rows[0]]
    for c in COLUMNS:
        if c not in header:
            _fail(path, 1, c, f"missing column (the header must be {','.join(COLUMNS)})")
    extra = [h for h in header if h not in COLUMNS]
    if extra:
        _fail(path, 1, extra[0], f"unknown column (allowed: {', '.join(COLUMNS)})")
    col = {c: header.index(c) for c in COLUMNS}
    records, seen, kinds = [], {}, set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            _fail(path, line, "value", f"{len(row)} fields, the header has {len(header)}")
        cell = {c: row[i].strip() for c, i in col.items()}
        try:
            start = dt.date.fromisoformat(cell["period_start"])
        except ValueError:
            _fail(
                path, line, "period_start", f"not a date YYYY-MM-DD (got {cell['period_start']!r})"
            )
        period = cell["period"].lower()
        if period not in ("week", "month"):
            _fail(path, line, "period", f"must be week or month (got {cell['period']!r})")
        if period == "month" and start.day != 1:
            _fail(path, line, "period_start", f"a month starts on its 1st (got {start})")
        kinds.add(period)
        if len(kinds) > 1:
            _fail(path, line, "period", "mixes weeks and months; use one kind per file")
        measure = cell["measure"]
        unit_kind = unit(measure)
        if unit_kind is None:
            known = ", ".join([*MEASURES, "<service>_occupancy", "<service>_exits_<where>"])
            _fail(path, line, "measure", f"unknown measure {measure!r} (known: {known})")
        if cell["unit"] != unit_kind[0]:
            _fail(path, line, "unit", f"{measure} is in {unit_kind[0]} (got {cell['unit']!r})")
        text = cell["value"]
        if _THOUSANDS.match(text):
            text = text.replace(",", "")
        if not _NUMBER.match(text):
            _fail(path, line, "value", f"not a number (got {cell['value']!r})")
        value = float(text)
        if not math.isfinite(value) or value < 0:
            _fail(path, line, "value", f"must be zero or more (got {cell['value']!r})")
        if (start, measure) in seen:
            _fail(
                path,
                line,
                "period_start",
                f"duplicate: {measure} for {start} is also on line {seen[(start, measure)]}",
            )
        seen[(start, measure)] = line
        records.append((line, start, period, measure, value, unit_kind[0], unit_kind[1]))
    if not records:
        raise ConfigError(f"{path}: no rows after the header")
    table = pd.DataFrame(
        records, columns=["line", "period_start", "period", "measure", "value", "unit", "kind"]
    )
    for measure, grp in table.groupby("measure", sort=False):
        starts = sorted(grp["period_start"])
        for a, b in zip(starts, starts[1:]):
            expected = _next(a, grp["period"].iloc[0])
            if b != expected:
                line = int(grp.loc[grp["period_start"] == b, "line"].iloc[0])
                _fail(
                    path,
                    line,
                    "period_start",
                    f"missing period for {measure}: {expected} comes between {a} and {b}",
                )
    return Targets(table.sort_values(["measure", "period_start"], ignore_index=True), path)


def _next(start: dt.date, period: str) -> dt.date:
    if period == "week":
        return start + dt.timedelta(days=7)
    return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)


def place(
    targets: Targets, start_date: dt.date, warmup_days: float, horizon_days: float
) -> pd.DataFrame:
    """Targets with ``start_day``/``end_day`` (days from the system's start_date); every period must
    lie in the measured window ``[warmup_days, horizon_days)``."""
    t = targets.table.copy()
    t["start_day"] = [(d - start_date).days for d in t["period_start"]]
    t["end_day"] = [(_next(d, p) - start_date).days for d, p in zip(t["period_start"], t["period"])]
    bad = t[(t["start_day"] < warmup_days) | (t["end_day"] > horizon_days)]
    if len(bad):
        r = bad.iloc[0]
        first = start_date + dt.timedelta(days=math.ceil(warmup_days))
        last = start_date + dt.timedelta(days=int(horizon_days))
        _fail(
            targets.path,
            int(r["line"]),
            "period_start",
            f"{r['period_start']} is outside the simulated measured window {first} to {last}; "
            "set system.start_date, run.warmup_days and run.horizon_days to cover the data",
        )
    return t


def simulated(daily: pd.DataFrame, placed: pd.DataFrame) -> pd.DataFrame:
    """The targets' measures from a daily table: one row per (scenario, replication, measure,
    period_start) with ``value``."""
    out = []
    acute = warmup.acute_service(daily)  # "acute" measures are about the acute-role service
    for measure, grp in placed.groupby("measure", sort=False):
        if "_exits_" in measure:
            service, where = measure.split("_exits_", 1)
            column = f"exits_{where}"
        elif measure.endswith("_occupancy") and measure != "acute_occupancy":
            service, column = measure.removesuffix("_occupancy"), "occupancy_mean"
        else:
            service, column = acute, _COLUMN.get(measure) or _delayed(measure)
        d = daily[daily["service"] == service]
        if d.empty or column not in d:
            raise ConfigError(f"{measure}: the model has no {service} {column} to compare with")
        for (scenario, rep), rd in d.groupby(["scenario", "replication"], sort=False):
            series = rd.set_index("day")[column]
            for _, r in grp.iterrows():
                window = series.loc[int(r["start_day"]) : int(r["end_day"]) - 1]
                value = window.sum() if r["kind"] == COUNT else window.mean()
                out.append((scenario, rep, measure, r["period_start"], float(value)))
    return pd.DataFrame(
        out, columns=["scenario", "replication", "measure", "period_start", "value"]
    )


_COLUMN = {
    "admissions": "admissions",
    "acute_occupancy": "occupancy_mean",
    "ready_to_leave": "delayed_mean",
    "delayed_days": "delayed_mean",
    **{f"discharges_{p}": f"discharges_{p}" for p in PATHWAYS},
}


def _delayed(measure: str) -> str:
    return "delayed_" + measure.removeprefix("delayed_days_")


DISTANCES = ("relative_rmse", "standardised")


def distance(sim: pd.DataFrame, placed: pd.DataFrame, kind: str = "relative_rmse") -> float:
    """How far the model is from the targets, averaged over measures so each weighs alike.

    ``relative_rmse``: the root-mean-square error of the replication-mean series over the mean
    observed value, ``sqrt(mean_p (s_p - o_p)^2) / mean_p |o_p|``.
    ``standardised``: the root of the mean squared z-score, ``(s_p - o_p) / sd_p``, with ``sd_p``
    the spread of the measure across replications (floored at 1% of the observed mean): noisy
    measures, such as delays, count less than steady ones.
    """
    grouped = sim.groupby(["measure", "period_start"])["value"]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    errors = []
    for measure, grp in placed.groupby("measure", sort=False):
        s = mean.loc[measure].reindex(grp["period_start"]).to_numpy()
        o = grp["value"].to_numpy()
        scale = max(float(np.mean(np.abs(o))), 1e-9)
        if kind == "standardised":
            spread = sd.loc[measure].reindex(grp["period_start"]).fillna(0).to_numpy()
            z = (s - o) / np.maximum(spread, 0.01 * scale)
            errors.append(float(np.sqrt(np.mean(z**2))))
        else:
            errors.append(float(np.sqrt(np.mean((s - o) ** 2))) / scale)
    return float(np.mean(errors))
