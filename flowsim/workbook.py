"""The summit pack's Excel workbook (``summit_pack.xlsx``) for analysts: headline numbers, the
summary and comparison with intervals, daily series with bands, flows, parameters with sources."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowsim import national
from flowsim.uncertainty import interval

if TYPE_CHECKING:
    from flowsim.outputs import Tables

SERIES = ("occupancy_mean", "waiting_mean", "delayed_mean")
MEDIAN_NOTE = (
    "Where a few replications drive a KPI's mean (see the Headline sheet's note), the headline is "
    "its median, with a distribution-free interval (order statistics; median_coverage is its real "
    "coverage)."
)


def daily_bands(daily: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, service, day): mean, p5, p50 and p95 across replications of each series."""
    g = daily.groupby(["scenario", "service", "day"], sort=False)
    parts = [g["warmup"].first(), g["capacity"].first()]
    for col in SERIES:
        q = g[col].quantile([0.05, 0.5, 0.95]).unstack()
        q.columns = [f"{col}_p5", f"{col}_p50", f"{col}_p95"]
        parts += [g[col].mean().rename(f"{col}_mean"), q]
    return pd.concat(parts, axis=1).reset_index()


def flow_intervals(flows: pd.DataFrame) -> pd.DataFrame:
    """Mean patients per (scenario, source, target) over replications, with the 95% CI."""
    rows = []
    reps = flows.groupby("scenario", sort=False)["replication"].unique()
    for (scenario, source, target), g in flows.groupby(
        ["scenario", "source", "target"], sort=False
    ):
        x = g.set_index("replication")["patients"].reindex(reps[scenario], fill_value=0)
        mean, lo, hi = interval(x.to_numpy(dtype=np.float64), lower=0.0)
        rows.append((scenario, source, target, mean, lo, hi, len(x)))
    return pd.DataFrame(
        rows, columns=["scenario", "source", "target", "mean", "ci_low", "ci_high", "n"]
    )


def sheets(
    t: Tables, head: pd.DataFrame, params: pd.DataFrame, stress: pd.DataFrame, warns: list[str]
) -> dict[str, pd.DataFrame]:
    """The workbook's sheets, in order."""
    m = t.manifest
    about = [
        ("system", t.config.get("system", {}).get("name", "")),
        ("scenarios", ", ".join(t.scenarios)),
        ("replications", t.replications),
        ("seed", m.get("seed")),
        ("warm-up days", t.window["warmup_days"]),
        ("measured days", t.measured_days),
        ("config hash", m.get("config_hash")),
        *((f"version: {k}", v) for k, v in m.get("versions", {}).items()),
        ("built", dt.date.today().isoformat()),
        (
            "note",
            "Intervals are 95% confidence intervals across replications (Student t); "
            "p5/p50/p95 are percentiles across replications.",
        ),
        *((("median", MEDIAN_NOTE),) if "median" in head else ()),
        *(("warning", w) for w in warns),
    ]
    out = {"About": pd.DataFrame(about, columns=["item", "value"])}
    if not head.empty:
        out["Headline"] = head
    for name in ("summary", "comparison"):
        if getattr(t, name) is not None:
            out[name.capitalize()] = getattr(t, name)
    if t.summary is not None:
        drd = [national.discharge_ready(t.summary, s) for s in t.scenarios]
        drd = [d.assign(scenario=s) for d, s in zip(drd, t.scenarios) if d is not None]
        if drd:
            out["Discharge ready date"] = pd.concat(drd, ignore_index=True)
        why = [
            r.assign(scenario=s, scheme=national.SCHEME_NAMES[scheme])
            for s in t.scenarios
            for scheme in national.schemes(t.config)
            if (r := national.reasons(t.summary, s, scheme)) is not None
        ]
        if why:
            out["Delay reasons"] = pd.concat(why, ignore_index=True)
        orgs = national.organisations(t.summary, t.comparison, t.config)
        if orgs is not None:
            out["Organisations"] = orgs
    if t.daily is not None:
        out["Daily"] = daily_bands(t.daily)
    if t.flows is not None:
        out["Flows"] = flow_intervals(t.flows)
    for name in ("capacity_sweep", "bottlenecks", "allocation", "allocation_frontier"):
        if getattr(t, name) is not None:
            out[name.replace("_", " ").capitalize()[:31]] = getattr(t, name)
    out["Parameters"] = params
    out["STRESS-DES"] = stress
    return out


def write(
    path: Path,
    t: Tables,
    head: pd.DataFrame,
    params: pd.DataFrame,
    stress: pd.DataFrame,
    warns: list[str],
) -> None:
    """Write the workbook with XlsxWriter, column by column (fast for the daily sheet): a bold
    frozen header row, readable widths, thousands separators on decimals, blanks for NaN."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    bold = book.add_format({"bold": True, "bg_color": "#F2F6FA", "bottom": 1})
    decimal = book.add_format({"num_format": "#,##0.00"})
    try:
        for name, df in sheets(t, head, params, stress, warns).items():
            ws = book.add_worksheet(name)
            ws.write_row(0, 0, [str(c) for c in df.columns], bold)
            ws.freeze_panes(1, 0)
            for j, col in enumerate(df.columns):
                x = df[col]
                fmt = decimal if pd.api.types.is_float_dtype(x) else None
                values = [None if v is None or v != v else v for v in x.tolist()]
                ws.write_column(1, j, values, fmt)
                sample = [len(str(v)) for v in values[:200]]
                ws.set_column(j, j, min(max(10, len(str(col)) + 2, *sample, 0) + 1, 80))
    finally:
        book.close()
