"""Plotly figures of the summit pack, built from the saved tables only: the flow of patients, the
causes of delays, each service over time, scenario comparisons and appraisals. No SimPy here.

Every figure has a plain-English title that states its finding, labelled axes with units, a
colour-blind-safe palette (Okabe and Ito) and its uncertainty (intervals or bands).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowsim.config import PATHWAYS, REASON_NAMES
from flowsim.wording import fmt

if TYPE_CHECKING:
    from flowsim.outputs import Tables

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
"""Okabe and Ito's colour-blind-safe palette."""
ORGANISATIONS = {"nhs": "NHS", "social_care": "Social care", "both": "Both"}
SERVICE_NAMES = {
    "front_door": "front door (waiting for a bed)",
    "acute": "acute beds",
    "assessment": "discharge assessment",
    "reablement": "reablement",
    "home_care": "home care",
    "step_down": "step-down beds",
    "care_home": "care homes",
}
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


@dataclass
class Figure:
    """One figure of the pack: ``key`` names its files in ``figures/``; ``title`` states the
    finding; ``reading`` is the one-line plain-English reading for a slide."""

    key: str
    title: str
    reading: str
    figure: go.Figure


def service_name(s: str) -> str:
    return SERVICE_NAMES.get(s, s.replace("_", " "))


def _style(fig: go.Figure, title: str, height: int = 460) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 17}},
        template="plotly_white",
        colorway=list(PALETTE),
        font={"family": "Arial, Helvetica, sans-serif", "size": 13, "color": "#222"},
        height=height,
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


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
    return Figure("flow", title, reading, _style(fig, title, height=560))


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
    return Figure(key, title, reading, _style(fig, title, height=int(height)))


def causes_by_reason(t: Tables) -> Figure | None:
    if t.summary is None:
        return None
    kpis = [
        k
        for k in _summary(t, t.scenarios[0]).index
        if k.startswith("delayed_bed_days_") and k.removeprefix("delayed_bed_days_") in REASON_NAMES
    ]
    if not kpis:
        return None
    names = [f"{k[17:]}: {REASON_NAMES[k[17:]]}" for k in kpis]
    return _bars_by(t, kpis, names, "causes_by_reason", "DTOC reason for the delay")


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
        f"service_{service}", title, reading, _style(fig, title, height=620 if rows == 2 else 420)
    )


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# -- scenarios --------------------------------------------------------------------------------


FOREST = (
    ("delayed_bed_days", "Delayed bed days", ""),
    ("acute_bed_days", "Acute bed days", ""),
    ("boarding_hours", "Boarding hours", ""),
    ("cost_total_gbp", "Net system cost", "GBP"),
)


def forest(t: Tables) -> Figure | None:
    """Paired change against the baseline with 95% CIs, one panel per KPI."""
    if t.comparison is None or t.comparison.empty:
        return None
    c = t.comparison
    names = list(dict.fromkeys(c["scenario"]))
    fig = make_subplots(
        rows=1,
        cols=len(FOREST),
        subplot_titles=[f[1] for f in FOREST],
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    for j, (kpi, label, unit) in enumerate(FOREST, start=1):
        rows = c[c["kpi"] == kpi].set_index("scenario").reindex(names)
        scale = 1e6 if unit == "GBP" else 1.0
        fig.add_trace(
            go.Scatter(
                x=rows["diff_mean"] / scale,
                y=names,
                mode="markers",
                marker={"size": 10, "color": PALETTE[0]},
                error_x={
                    "type": "data",
                    "array": ((rows["diff_ci_high"] - rows["diff_mean"]) / scale).fillna(0),
                    "arrayminus": ((rows["diff_mean"] - rows["diff_ci_low"]) / scale).fillna(0),
                },
                showlegend=False,
                hovertemplate="%{y}: %{x:,.2f}<extra>" + label + "</extra>",
            ),
            row=1,
            col=j,
        )
        fig.add_vline(x=0, line={"color": "#888", "dash": "dot"}, row=1, col=j)
        fig.update_xaxes(title_text="GBP m" if unit == "GBP" else label.lower(), row=1, col=j)
    fig.update_yaxes(autorange="reversed")
    d = c[c["kpi"] == "delayed_bed_days"].set_index("scenario").reindex(names)
    best = d["diff_mean"].idxmin()
    r = d.loc[best]
    ci = f"95% CI {fmt(-r['diff_ci_high'])} to {fmt(-r['diff_ci_low'])}"
    if r["diff_ci_high"] < 0:
        title = f"{best} cuts delayed bed days the most: {fmt(-r['diff_mean'])} fewer ({ci})"
    else:
        title = (
            f"No scenario surely cuts delayed bed days: {best} avoids {fmt(-r['diff_mean'])} ({ci})"
        )
    reading = (
        "Each dot is the change against the baseline with the same random numbers; a bar that "
        "crosses the dotted line is a change the runs cannot tell from none."
    )
    return Figure("forest", title, reading, _style(fig, title, height=140 + 70 * len(names)))


def cost_effectiveness(t: Tables) -> Figure | None:
    """Net cost change against delayed bed days avoided, with both 95% CIs."""
    if t.comparison is None or t.comparison.empty:
        return None
    c = t.comparison.set_index(["scenario", "kpi"])
    names = list(dict.fromkeys(t.comparison["scenario"]))
    fig = go.Figure()
    for k, name in enumerate(names):
        d, m = c.loc[(name, "delayed_bed_days")], c.loc[(name, "cost_total_gbp")]
        fig.add_trace(
            go.Scatter(
                x=[-d["diff_mean"]],
                y=[m["diff_mean"] / 1e6],
                mode="markers+text",
                text=[name],
                textposition="top center",
                marker={"size": 12, "color": PALETTE[(k + 1) % len(PALETTE)]},
                error_x={
                    "type": "data",
                    "array": [_nz(d["diff_mean"] - d["diff_ci_low"])],
                    "arrayminus": [_nz(d["diff_ci_high"] - d["diff_mean"])],
                },
                error_y={
                    "type": "data",
                    "array": [_nz(m["diff_ci_high"] - m["diff_mean"]) / 1e6],
                    "arrayminus": [_nz(m["diff_mean"] - m["diff_ci_low"]) / 1e6],
                },
                name=name,
            )
        )
    fig.add_hline(y=0, line={"color": "#888", "dash": "dot"})
    fig.add_vline(x=0, line={"color": "#888", "dash": "dot"})
    fig.update_xaxes(title_text="Delayed bed days avoided (95% CI)")
    fig.update_yaxes(title_text="Change in net system cost, GBP m (95% CI)")
    avoided = {n: -c.loc[(n, "delayed_bed_days"), "diff_mean"] for n in names}
    best = max(avoided, key=avoided.get)
    title = f"Cost against effect: {best} avoids the most delayed bed days"
    reading = (
        "Right is fewer delayed bed days; below the dotted line the whole system (NHS and council) "
        "spends less than in the baseline, investment included."
    )
    return Figure("cost_effectiveness", title, reading, _style(fig, title))


def _nz(x: float) -> float:
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# -- appraisals -------------------------------------------------------------------------------


def capacity_curve(t: Tables) -> Figure | None:
    s = t.capacity_sweep
    if s is None or s.empty:
        return None
    fig = go.Figure()
    for k, (service, g) in enumerate(s.groupby("service", sort=False)):
        g = g.sort_values("capacity")
        fig.add_trace(
            go.Scatter(
                x=g["capacity"],
                y=g["total_cost_mean_gbp"] / 1e6,
                mode="lines+markers",
                name=f"{service_name(service)} (mean, 95% CI)",
                line={"color": PALETTE[k % len(PALETTE)]},
                error_y={
                    "type": "data",
                    "array": (g["total_cost_ci_high_gbp"] - g["total_cost_mean_gbp"]) / 1e6,
                    "arrayminus": (g["total_cost_mean_gbp"] - g["total_cost_ci_low_gbp"]) / 1e6,
                },
            )
        )
        best = g[g["optimal"]]
        fig.add_trace(
            go.Scatter(
                x=best["capacity"],
                y=best["total_cost_mean_gbp"] / 1e6,
                mode="markers",
                marker={"symbol": "star", "size": 18, "color": PALETTE[3]},
                name="lowest total cost",
            )
        )
    opt = s[s["optimal"]].iloc[0]
    fig.update_xaxes(title_text=f"{service_name(opt['service']).capitalize()} capacity (places)")
    fig.update_yaxes(title_text="Capacity cost + cost of delays, GBP m a year")
    title = (
        f"{int(opt['capacity'])} {service_name(opt['service'])} places give the lowest total cost "
        f"({fmt(opt['total_cost_mean_gbp'], 'GBP')})"
    )
    near = s[s["near_optimal"]]["capacity"].astype(int).tolist()
    reading = (
        f"Total cost of capacity and delays is lowest at {int(opt['capacity'])} places; "
        f"{', '.join(map(str, near)) or 'no other level'} cannot be told apart from it."
    )
    return Figure("capacity_curve", title, reading, _style(fig, title))


def frontier(t: Tables) -> Figure | None:
    f = t.allocation_frontier
    if f is None or f.empty:
        return None
    fig = go.Figure(
        go.Scatter(
            x=f["budget_gbp"] / 1e6,
            y=f["objective_mean"],
            mode="lines+markers",
            line={"color": PALETTE[0]},
            error_y={
                "type": "data",
                "array": (f["objective_ci_high"] - f["objective_mean"]).fillna(0),
                "arrayminus": (f["objective_mean"] - f["objective_ci_low"]).fillna(0),
            },
            text=_mixes(f),
            hovertemplate="GBP %{x:.2f}m: %{y:,.0f}<br>%{text}<extra></extra>",
            name="best mix at each budget (95% CI)",
        )
    )
    fig.update_xaxes(title_text="Budget over the measured window, GBP m")
    fig.update_yaxes(title_text=f"{t.allocation_objective.replace('_', ' ')} (95% CI)")
    last = f.iloc[-1]
    title = (
        f"With GBP {last['budget_gbp'] / 1e6:.2f}m the best mix found brings "
        f"{t.allocation_objective.replace('_', ' ')} to {fmt(last['objective_mean'])}"
    )
    reading = (
        "Each point is the best mix of levers found at that budget; spending never exceeds it."
    )
    return Figure("allocation_frontier", title, reading, _style(fig, title))


def _mixes(f: pd.DataFrame) -> list[str]:
    units = [c for c in f.columns if c.startswith("units_")]
    return [
        ", ".join(f"{service_name(c[6:])} +{int(r[c])}" for c in units if r[c]) or "nothing"
        for _, r in f.iterrows()
    ]


def bottlenecks(t: Tables) -> Figure | None:
    b = t.bottlenecks
    if b is None or b.empty:
        return None
    b = b.sort_values("per_unit", ascending=False)
    fig = go.Figure(
        go.Bar(
            x=[service_name(s) for s in b["service"]],
            y=b["per_unit"],
            error_y={
                "type": "data",
                "array": (b["ci_high"] / b["units_added"] - b["per_unit"]).fillna(0),
                "arrayminus": (b["per_unit"] - b["ci_low"] / b["units_added"]).fillna(0),
            },
            marker_color=PALETTE[0],
            customdata=b["per_gbp_1000_a_year"],
            hovertemplate="%{x}: %{y:,.1f} per unit; %{customdata:.2f} per GBP 1k a year"
            "<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="Service given more capacity")
    fig.update_yaxes(title_text="Delayed bed days avoided per extra unit (95% CI)")
    top = b.iloc[0]
    title = (
        f"The tightest bottleneck is {service_name(top['service'])}: one more place avoids "
        f"{top['per_unit']:,.1f} delayed bed days"
    )
    reading = "Bars show what one more unit of each capacity would avoid, with all else unchanged."
    return Figure("bottlenecks", title, reading, _style(fig, title))


def all_figures(t: Tables) -> list[Figure]:
    """Every figure the tables allow, in the order a summit reads them."""
    made = [flow(t), causes_by_reason(t), causes_by_organisation(t), causes_by_wait(t)]
    if t.daily is not None:
        order = [*SERVICE_NAMES]  # by role (a table without roles: by name)
        first = t.daily.drop_duplicates("service")
        role = dict(zip(first["service"], first["role" if "role" in first else "service"]))
        rank = lambda s: (order + [role[s]]).index(role[s])  # noqa: E731
        places = sorted(t.daily["service"].unique(), key=rank)
        made += [service_panels(t, s) for s in places]
    made += [forest(t), cost_effectiveness(t), capacity_curve(t), frontier(t), bottlenecks(t)]
    return [f for f in made if f is not None]
