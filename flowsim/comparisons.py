"""Plotly figures of the summit pack that weigh options against each other, from the saved tables:
each scenario against the baseline (forest, cost against effect) and the appraisals (capacity
levels, the budget's best mixes, bottlenecks). Titles state the finding; 95% CIs throughout.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowsim.styling import PALETTE, Figure, service_name, style
from flowsim.wording import fmt

if TYPE_CHECKING:
    from flowsim.outputs import Tables


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
    return Figure("forest", title, reading, style(fig, title, height=140 + 70 * len(names)))


def whose_beds(t: Tables) -> Figure | None:
    """Whose money saves whose beds: each scenario's paired change in every organisation's delayed
    bed days (a council's: its residents'; a trust's: in its beds), with 95% CIs, one colour a
    scenario; beside it, who funds what (the scenario's investment by funder)."""
    orgs = t.config.get("system", {}).get("organisations") or {}
    if not orgs or t.comparison is None or t.comparison.empty:
        return None
    c = t.comparison.set_index(["scenario", "kpi"])
    names = list(dict.fromkeys(t.comparison["scenario"]))
    whose = {n: "residents" if o.get("kind") == "council" else "beds" for n, o in orgs.items()}
    labels = [f"{_short(n, orgs[n])}: its {whose[n]}" for n in orgs]
    fig = go.Figure()
    for k, name in enumerate(names):
        rows = pd.DataFrame(
            [c.loc[(name, f"org_{n}_delayed_bed_days")] if (name, f"org_{n}_delayed_bed_days")
             in c.index else pd.Series(dtype=float) for n in orgs]  # fmt: skip
        )
        funded = [
            c.loc[(name, f"investment_cost_{n}_gbp"), "diff_mean"]
            if (name, f"investment_cost_{n}_gbp") in c.index else 0.0
            for n in orgs
        ]  # fmt: skip
        fig.add_bar(
            y=labels,
            x=rows["diff_mean"].to_numpy(),
            error_x={
                "type": "data",
                "array": (rows["diff_ci_high"] - rows["diff_mean"]).fillna(0).to_numpy(),
                "arrayminus": (rows["diff_mean"] - rows["diff_ci_low"]).fillna(0).to_numpy(),
            },
            orientation="h",
            name=name,
            marker_color=PALETTE[k % len(PALETTE)],
            customdata=[[orgs[n].get("label") or n, fmt(f, "GBP")] for n, f in zip(orgs, funded)],
            hovertemplate="%{customdata[0]}: %{x:,.0f} bed days (it funds %{customdata[1]})"
            "<extra>" + name + "</extra>",
        )
    fig.add_vline(x=0, line={"color": "#888", "dash": "dot"})
    fig.update_xaxes(title_text="Change in delayed bed days against the baseline (95% CI)")
    fig.update_yaxes(title_text="Organisation", autorange="reversed")
    fig.update_layout(barmode="group")
    title, reading = _whose_finding(c, names, orgs)
    height = 200 + 40 * len(orgs) * max(1, len(names)) ** 0.5
    return Figure("whose_beds", title, reading, style(fig, title, height=int(height)))


def _short(name: str, org: dict) -> str:
    """An organisation's label if it is short, else its name."""
    label = org.get("label") or name
    return label if len(label) <= 28 else name


def _whose_finding(c: pd.DataFrame, names: list[str], orgs: dict) -> tuple[str, str]:
    """The title: whose investment surely cuts another organisation's delays (another council's
    residents' first), if any."""
    label = lambda n: _short(n, orgs[n])  # noqa: E731
    councils_first = sorted(orgs, key=lambda n: orgs[n].get("kind") != "council")
    for name in names:
        funders = [n for n in orgs if (name, f"investment_cost_{n}_gbp") in c.index
                   and c.loc[(name, f"investment_cost_{n}_gbp"), "diff_mean"] > 0]  # fmt: skip
        helped = [n for n in councils_first if n not in funders and
                  (name, f"org_{n}_delayed_bed_days") in c.index and
                  c.loc[(name, f"org_{n}_delayed_bed_days"), "diff_ci_high"] < 0]  # fmt: skip
        if funders and helped:
            r = c.loc[(name, f"org_{helped[0]}_delayed_bed_days")]
            title = (
                f"{label(funders[0])}'s money in {name} also cuts {label(helped[0])}'s delayed "
                f"bed days by {fmt(-r['diff_mean'])} (95% CI {fmt(-r['diff_ci_high'])} to "
                f"{fmt(-r['diff_ci_low'])})"
            )
            break
    else:
        title = "Each organisation's delayed bed days in each scenario, against the baseline"
    reading = (
        "A council's bars are its residents' delayed bed days, a trust's those in its beds, so a "
        "council's and a trust's bars overlap. Each bar is the change against the baseline with "
        "the same random numbers; one that crosses the dotted line cannot be told from none. "
        "Hover for what each organisation funds in the scenario."
    )
    return title, reading


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
    return Figure("cost_effectiveness", title, reading, style(fig, title))


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
    return Figure("capacity_curve", title, reading, style(fig, title))


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
    return Figure("allocation_frontier", title, reading, style(fig, title))


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
    return Figure("bottlenecks", title, reading, style(fig, title))
