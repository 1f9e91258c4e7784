"""Plotly figures of the summit pack, built from the saved tables only: one run's system (the flow
of patients, the causes of delays, each service over time) and the pack's list of figures. No SimPy.

Every figure has a plain-English title that states its finding, labelled axes with units, a
colour-blind-safe palette (Okabe and Ito, styling.py) and its uncertainty (intervals or bands).
Figures comparing scenarios and appraisals are in comparisons.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowsim import national
from flowsim.comparisons import (
    bottlenecks,
    capacity_curve,
    cost_effectiveness,
    forest,
    frontier,
    whose_beds,
)
from flowsim.config import PATHWAYS, REASON_NAMES
from flowsim.reasons import NCTR, NOT_DTOC, NOT_DTOC_NAME
from flowsim.styling import PALETTE, SERVICE_NAMES, Figure, service_name, style
from flowsim.wording import fmt

if TYPE_CHECKING:
    from flowsim.outputs import Tables

ORGANISATIONS = {"nhs": "NHS", "social_care": "Social care", "both": "Both"}
NODE_NAMES = {
    "admitted": "Admitted to hospital",
    "readmitted": "Readmitted to hospital",
    "community_referral": "Referred from the community",
    "P0": "Pathway 0: home, no new support",
    "P1": "Pathway 1: home with support",
    "P2": "Pathway 2: rehabilitation bed",
    "P3": "Pathway 3: care home",
    "home": "Home",
    "death": "Died",
    "readmission": "Back to hospital",
    "lost": "Turned away, lost to the system",
}


def _summary(t: Tables, scenario: str) -> pd.DataFrame:
    s = t.summary
    return s[s["scenario"] == scenario].set_index("kpi")


def _err(rows: pd.DataFrame, col_mean="mean", lo="ci_low", hi="ci_high") -> dict:
    plus = (rows[hi] - rows[col_mean]).fillna(0).to_numpy()
    minus = (rows[col_mean] - rows[lo]).fillna(0).to_numpy()
    return {"type": "data", "array": plus, "arrayminus": minus, "visible": True, "thickness": 1.5}


# -- the system flow --------------------------------------------------------------------------


def flow(t: Tables) -> Figure | None:
    """Sankey of the baseline's mean flows in the measured window, 95% CIs in the hover text."""
    if t.flows is None or t.flows.empty:
        return None
    scenario = t.scenarios[0]
    f = t.flows[t.flows["scenario"] == scenario]
    reps = int(f["replication"].nunique())
    wide = f.pivot_table(
        index=["source", "target"], columns="replication", values="patients", fill_value=0
    )
    from flowsim.uncertainty import interval

    stats = [interval(row.to_numpy(), lower=0.0) for _, row in wide.iterrows()]
    links = pd.DataFrame(
        [(s, tg, m, lo, hi) for (s, tg), (m, lo, hi) in zip(wide.index, stats)],
        columns=["source", "target", "mean", "lo", "hi"],
    )
    nodes = list(dict.fromkeys([*links["source"], *links["target"]]))
    label = [NODE_NAMES.get(n, service_name(n).capitalize()) for n in nodes]
    index = {n: k for k, n in enumerate(nodes)}
    colour = {
        n: PALETTE[k % len(PALETTE)] for k, n in enumerate(nodes) if n not in ("home", "death")
    }
    colour.update({"home": "#009E73", "death": "#555555"})

    def ci(lo: float, hi: float) -> str:
        return "n/a (one replication)" if math.isnan(lo) else f"{lo:,.0f} to {hi:,.0f}"

    hover = [
        f"{m:,.0f} patients (95% CI {ci(lo, hi)})"
        for m, lo, hi in links[["mean", "lo", "hi"]].values
    ]
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": label, "pad": 14, "thickness": 16, "color": [colour[n] for n in nodes]},
            link={
                "source": [index[s] for s in links["source"]],
                "target": [index[s] for s in links["target"]],
                "value": links["mean"].to_numpy(),
                "customdata": hover,
                "hovertemplate": "%{source.label} to %{target.label}: %{customdata}<extra></extra>",
                "color": "rgba(120,120,120,0.25)",
            },
        )
    )
    acute = links.loc[links["target"].isin(PATHWAYS), "source"]  # the acute service, by name
    out = links[links["source"].isin(acute)]
    supported = out[out["target"].isin(["P1", "P2", "P3"])]["mean"].sum()
    alive = out[out["target"].str.startswith("P")]["mean"].sum()
    share = supported / alive if alive else math.nan
    title = (
        f"{fmt(share, '%')} of people leaving hospital alive need support to do so "
        f"(pathways 1 to 3)"
    )
    days = t.measured_days
    reading = (
        f"Of {alive:,.0f} people leaving hospital alive in {days:g} days, "
        f"{supported:,.0f} needed reablement, a rehabilitation bed or a care home "
        f"(mean of {reps} replications, {scenario})."
    )
    return Figure("flow", title, reading, style(fig, title, height=560))


# -- causes of delays -------------------------------------------------------------------------


def _bars_by(t: Tables, kpis: list[str], names: list[str], key: str, what: str) -> Figure | None:
    """Horizontal bars (long category names stay readable) with 95% CIs, one colour a scenario."""
    if t.summary is None:
        return None
    fig = go.Figure()
    for k, scenario in enumerate(t.scenarios):
        rows = _summary(t, scenario).reindex(kpis)
        fig.add_bar(
            y=names,
            x=rows["mean"].to_numpy(),
            error_x=_err(rows),
            orientation="h",
            name=scenario,
            marker_color=PALETTE[k % len(PALETTE)],
            hovertemplate="%{y}: %{x:,.0f} bed days<extra>" + scenario + "</extra>",
        )
    base = _summary(t, t.scenarios[0]).reindex(kpis)["mean"].fillna(0)
    total = base.sum()
    biggest = int(np.argmax(base.to_numpy()))
    share = base.iloc[biggest] / total if total else math.nan
    top = names[biggest][0].upper() + names[biggest][1:]
    title = f"{top}: {fmt(share, '%')} of delayed bed days"
    fig.update_xaxes(title_text="Delayed bed days in acute beds (mean, 95% CI)", rangemode="tozero")
    fig.update_yaxes(title_text=what, autorange="reversed")
    fig.update_layout(barmode="group")
    reading = (
        f"In the {t.scenarios[0]} run, {names[biggest]} is the largest share of delayed bed days "
        f"({base.iloc[biggest]:,.0f} of {total:,.0f})."
    )
    height = 200 + 34 * len(kpis) * max(1, len(t.scenarios)) ** 0.5
    return Figure(key, title, reading, style(fig, title, height=int(height)))


def causes_by_reason(t: Tables) -> Figure | None:
    """Delayed bed days by DTOC reason code (and the days of waits with no DTOC code)."""
    if t.summary is None:
        return None
    names = {**REASON_NAMES, NOT_DTOC: NOT_DTOC_NAME}
    kpis = [
        k
        for k in _summary(t, t.scenarios[0]).index
        if k.startswith("delayed_bed_days_") and k.removeprefix("delayed_bed_days_") in names
    ]
    if not kpis:
        return None
    labels = [
        names[k[17:]] if k[17:] == NOT_DTOC else f"{k[17:]}: {names[k[17:]]}" for k in kpis
    ]
    return _bars_by(t, kpis, labels, "causes_by_reason", "DTOC reason for the delay")


def causes_by_nctr_reason(t: Tables) -> Figure | None:
    """Delayed bed days by today's national (NCTR) reason category."""
    if t.summary is None:
        return None
    prefix = "delayed_bed_days_nctr_"
    kpis = [k for k in _summary(t, t.scenarios[0]).index if k.startswith(prefix)]
    if not kpis:
        return None
    labels = [NCTR[k.removeprefix(prefix)] for k in kpis]
    return _bars_by(t, kpis, labels, "causes_by_nctr_reason", "What the delay waits for (NCTR)")


def causes_by_organisation(t: Tables) -> Figure | None:
    kpis = [f"delayed_bed_days_{o}" for o in ORGANISATIONS]
    return _bars_by(
        t, kpis, list(ORGANISATIONS.values()), "causes_by_organisation", "Organisation responsible"
    )


def causes_by_wait(t: Tables) -> Figure | None:
    if t.summary is None:
        return None
    kpis = [k for k in _summary(t, t.scenarios[0]).index if k.startswith("delayed_bed_days_for_")]
    if not kpis:
        return None
    names = [
        "the discharge process" if k.endswith("discharge_process") else service_name(k[21:])
        for k in kpis
    ]
    return _bars_by(t, kpis, names, "causes_by_wait", "What delayed patients are waiting for")


# -- each service over time (the four IPACS panels) -------------------------------------------


PANELS = (
    ("occupancy_mean", "In service", "people"),
    ("waiting_mean", "Waiting to enter", "people"),
    ("delayed_mean", "Delayed (ready to leave, waiting)", "bed days a day"),
    ("cost_gbp", "Cost", "GBP a week"),
)


def service_panels(t: Tables, service: str) -> Figure | None:
    """Four panels over the measured weeks: median across replications, 50% and 90% bands."""
    if t.daily is None:
        return None
    d = t.daily[(t.daily["service"] == service) & ~t.daily["warmup"]].copy()
    if d.empty:
        return None
    svc = t.services_config.get(service, {})
    d["cost_gbp"] = d["occupancy_mean"] * svc.get("cost_per_occupied_day_gbp", 0.0) + d[
        "capacity"
    ].fillna(0) * svc.get("cost_per_capacity_day_gbp", 0.0)
    d["week"] = (d["day"] - d["day"].min()) // 7
    agg = {
        "occupancy_mean": "mean",
        "waiting_mean": "mean",
        "delayed_mean": "mean",
        "cost_gbp": "sum",
    }
    weekly = d.groupby(["scenario", "replication", "week"], sort=False).agg(agg).reset_index()
    full = d.groupby("week")["day"].nunique()
    weekly = weekly[weekly["week"].isin(full[full == 7].index)]
    if service == "front_door":
        panels = [("occupancy_mean", "Waiting for an acute bed", "people")]
    else:
        panels = list(PANELS)
    rows = 2 if len(panels) > 1 else 1
    fig = make_subplots(
        rows=rows,
        cols=rows,
        subplot_titles=[f"{p[1]} ({p[2]})" for p in panels],
        vertical_spacing=0.24,
    )
    for k, scenario in enumerate(t.scenarios):
        w = weekly[weekly["scenario"] == scenario]
        if w.empty:
            continue
        colour = PALETTE[k % len(PALETTE)]
        for j, (col, _, unit) in enumerate(panels):
            q = w.groupby("week")[col].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
            x = (q.index.to_numpy() + 1).tolist()
            row, c = j // 2 + 1, j % 2 + 1
            for lo, hi, alpha in ((0.05, 0.95, 0.15), (0.25, 0.75, 0.3)):
                fig.add_trace(
                    go.Scatter(
                        x=x + x[::-1],
                        y=np.r_[q[hi].to_numpy(), q[lo].to_numpy()[::-1]].round(2),
                        fill="toself",
                        fillcolor=_rgba(colour, alpha),
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                        legendgroup=scenario,
                    ),
                    row=row,
                    col=c,
                )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=q[0.5].to_numpy().round(2),
                    mode="lines",
                    line={"color": colour, "width": 2},
                    name=f"{scenario} (median, 50% and 90% bands)",
                    legendgroup=scenario,
                    showlegend=j == 0,
                    hovertemplate="week %{x}: %{y:,.1f} "
                    + unit
                    + "<extra>"
                    + scenario
                    + "</extra>",
                ),
                row=row,
                col=c,
            )
    for j, (_, _, unit) in enumerate(panels):
        fig.update_xaxes(title_text="Week after the warm-up", row=j // 2 + 1, col=j % 2 + 1)
        fig.update_yaxes(title_text=unit, rangemode="tozero", row=j // 2 + 1, col=j % 2 + 1)
    base = weekly[weekly["scenario"] == t.scenarios[0]]
    occ = base["occupancy_mean"].mean()
    delayed = base["delayed_mean"].mean()
    cap = d[d["scenario"] == t.scenarios[0]]["capacity"].mean()
    name = service_name(service)
    if service == "front_door":
        title = f"On average {occ:,.1f} people a day wait at the front door for an acute bed"
    elif cap and not math.isnan(cap):
        title = (
            f"{name.capitalize()}: {fmt(occ / cap, '%')} of {cap:,.0f} places in use; "
            f"{delayed:,.1f} people a day delayed in them"
        )
    else:
        title = f"{name.capitalize()}: {occ:,.0f} people in service on average"
    reading = (
        f"{name.capitalize()} after the warm-up, week by week: the line is the median "
        f"replication, the bands hold the middle 50% and 90%."
    )
    return Figure(
        f"service_{service}", title, reading, style(fig, title, height=620 if rows == 2 else 420)
    )


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# -- the pack ---------------------------------------------------------------------------------


def all_figures(t: Tables) -> list[Figure]:
    """Every figure the tables allow, in the order a summit reads them."""
    by_scheme = {"nctr": causes_by_nctr_reason, "dtoc": causes_by_reason}
    made = [flow(t), *(by_scheme[s](t) for s in national.schemes(t.config))]
    made += [causes_by_organisation(t), causes_by_wait(t)]
    if t.daily is not None:
        order = [*SERVICE_NAMES]  # by role (a table without roles: by name)
        first = t.daily.drop_duplicates("service")
        role = dict(zip(first["service"], first["role" if "role" in first else "service"]))
        rank = lambda s: (order + [role[s]]).index(role[s])  # noqa: E731
        places = sorted(t.daily["service"].unique(), key=rank)
        made += [service_panels(t, s) for s in places]
    made += [forest(t), whose_beds(t), cost_effectiveness(t), capacity_curve(t), frontier(t)]
    made += [bottlenecks(t)]
    return [f for f in made if f is not None]
