"""The summit pack, from the saved tables alone: ``report.html`` (one self-contained file, plotly.js
inlined once), ``figures/`` (PNG and SVG through kaleido and the machine's Chrome or Chromium),
``summit_pack.xlsx`` and ``summit_pack.pptx``. Never runs or imports the simulation.

Rebuild the pack of an output folder with ``flowsim-report <folder>``. The folder is read and
checked first (``flowsim/outputs.py``): a file missing or damaged is named, and nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import logging
import math
import sys
from pathlib import Path

import pandas as pd

from flowsim import (
    deck,
    figures,
    files,
    national,
    provenance,
    scenarios,
    uncertainty,
    warmup,
    workbook,
)
from flowsim.outputs import ReportError, Tables, load  # noqa: F401  (load: report.load)
from flowsim.styling import Figure
from flowsim.wording import change_text, fmt, interval_text

log = logging.getLogger(__name__)

HEADLINE = (
    ("delayed_bed_days", "Delayed bed days in acute beds", ""),
    ("delayed_patients", "People delayed leaving hospital", ""),
    ("boarding_hours", "Hours waited for an acute bed (boarding)", ""),
    ("acute_occupancy_rate", "Acute bed occupancy", "%"),
    ("home_at_91_days_rate", "At home 91 days after reablement", "%"),
    ("cost_total_gbp", "Net system cost (NHS and council)", "GBP"),
)
"""The numbers a summit reads first: (KPI, plain-English label, unit)."""
MIN_REPLICATIONS = 10
"""Fewer replications than this and the pack warns that the evidence is thin."""
PACK = ("report.html", "summit_pack.xlsx", "summit_pack.pptx")


# -- what the pack says -----------------------------------------------------------------------


def headline(t: Tables) -> pd.DataFrame:
    """The headline numbers, straight from summary.csv and comparison.csv (no recomputation);
    for a KPI whose mean a few replications drive (``uncertainty.driven_by_few`` on runs.parquet),
    also its ``median`` with a distribution-free interval (``median_ci_low``/``_high``, its
    ``median_coverage``) and the ``note`` saying why the median is the headline."""
    if t.summary is None:
        return pd.DataFrame()
    s = t.summary.set_index(["scenario", "kpi"])
    c = t.comparison.set_index(["scenario", "kpi"]) if t.comparison is not None else None
    rows = []
    for scenario in t.scenarios:
        for kpi, label, unit in HEADLINE:
            if (scenario, kpi) not in s.index:
                continue
            r = s.loc[(scenario, kpi)]
            row = {"scenario": scenario, "kpi": kpi, "label": label, "unit": unit}
            row.update({k: float(r[k]) for k in ("mean", "ci_low", "ci_high")})
            row["n"] = int(r["n"])
            if c is not None and (scenario, kpi) in c.index:
                d = c.loc[(scenario, kpi)]
                row.update({k: float(d[k]) for k in ("diff_mean", "diff_ci_low", "diff_ci_high")})
            row.update(_median_headline(t, scenario, kpi, label, unit))
            rows.append(row)
    return pd.DataFrame(rows)


def _median_headline(t: Tables, scenario: str, kpi: str, label: str, unit: str) -> dict:
    """The median, its interval and the note, for a KPI whose mean a few replications drive."""
    if t.runs is None or kpi not in t.runs:
        return {}
    x = t.runs.loc[t.runs["scenario"] == scenario, kpi].to_numpy(dtype=float)
    if not uncertainty.driven_by_few(x):
        return {}
    median, lo, hi, cover = uncertainty.median_interval(x)
    note = uncertainty.few_sentence(label, x, lambda v: fmt(v, unit))
    note += f" {uncertainty.WHY_FEW.get(kpi, 'A few replications are far above the others')}."
    if len(t.scenarios) > 1:
        note = f"{scenario}: {note}"
    return {
        "median": median,
        "median_ci_low": lo,
        "median_ci_high": hi,
        "median_coverage": cover,
        "note": note,
    }


def warnings(t: Tables) -> list[str]:
    """Where the evidence is thin: few replications, intervals wider than the effect, a mean
    that a few replications drive, a warm-up too short for the system's queues."""
    out = []
    n = t.replications
    if n < 2:
        out.append(
            "Only one replication: no confidence intervals can be given, and a single run can be "
            "far from the average. Run at least 10 (run.replications=10) before using these "
            "numbers."
        )
    elif n < MIN_REPLICATIONS:
        out.append(
            f"Only {n} replications: the intervals are wide and may be unreliable. Use at least "
            f"{MIN_REPLICATIONS} (run.replications={MIN_REPLICATIONS} or more) for decisions."
        )
    if t.comparison is not None:
        d = t.comparison[t.comparison["kpi"] == "delayed_bed_days"]
        for _, r in d.iterrows():
            if not (r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0):
                out.append(
                    f"{r['scenario']}: the 95% interval of its change in delayed bed days "
                    f"({change_text(r['diff_ci_low'])} to {change_text(r['diff_ci_high'])}) is "
                    "wider than the effect and includes no change; more replications may tell."
                )
    head = headline(t)
    if "note" in head:
        out += head["note"].dropna().tolist()
    if t.daily is not None:
        out += warmup.warmup_check(t.daily, t.window["warmup_days"])
        out += warmup.growth_check(t.daily, t.window["warmup_days"])
    return out


# -- the HTML report --------------------------------------------------------------------------

CSS = """
body{font-family:Arial,Helvetica,sans-serif;color:#222;max-width:1280px;margin:0 auto;
padding:0 24px} h1{font-size:28px;margin:24px 0 4px}
h2{font-size:22px;margin-top:40px;border-bottom:2px solid #0072B2} .sub{color:#555;margin:0 0 16px}
.warn{background:#fff4d6;border-left:6px solid #E69F00;padding:10px 16px}
.warn li{margin:4px 0} table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border-bottom:1px solid #ddd;padding:6px 10px;text-align:left;vertical-align:top}
td.num{text-align:right;white-space:nowrap} th{background:#f2f6fa}
.reading{color:#333;margin:2px 0 18px}
.ci{color:#555;font-size:12px} details{margin:8px 0} summary{cursor:pointer;font-weight:bold}
"""


def _cell(value: float, unit: str, scenario: str, kpi: str, stat: str, text: str) -> str:
    """A number with its exact value in ``data-value`` (tests read it back against the tables)."""
    return (
        f'<span data-scenario="{html.escape(scenario)}" data-kpi="{kpi}" data-stat="{stat}" '
        f'data-value="{float(value)!r}">{html.escape(text)}</span>'
    )


def _headline_html(t: Tables, head: pd.DataFrame) -> str:
    if head.empty:
        return ""
    comparing = "diff_mean" in head
    cols = "".join(
        f"<th>{html.escape(s)}"
        + (f" (change against {html.escape(t.scenarios[0])})" if comparing and k else "")
        + "</th>"
        for k, s in enumerate(t.scenarios)
    )
    body = []
    for kpi, label, unit in HEADLINE:
        rows = head[head["kpi"] == kpi]
        if rows.empty:
            continue
        cells = []
        for _, r in rows.iterrows():
            sc = r["scenario"]
            text = _cell(r["mean"], unit, sc, kpi, "mean", fmt(r["mean"], unit))
            lo = _cell(r["ci_low"], unit, sc, kpi, "ci_low", fmt(r["ci_low"], unit))
            hi = _cell(r["ci_high"], unit, sc, kpi, "ci_high", fmt(r["ci_high"], unit))
            ci = "no interval" if math.isnan(r["ci_low"]) else f"95% CI {lo} to {hi}"
            if not pd.isna(r.get("median")):  # a few replications drive the mean
                ci = f"{_median_html(r, unit)}<br>mean {text} ({ci})"
                text = _cell(r["median"], unit, sc, kpi, "median", fmt(r["median"], unit))
                text += " <span class='ci'>median</span>"
            extra = ""
            if comparing and not pd.isna(r.get("diff_mean")):
                d = _cell(
                    r["diff_mean"], unit, sc, kpi, "diff_mean", change_text(r["diff_mean"], unit)
                )
                dl = _cell(
                    r["diff_ci_low"],
                    unit,
                    sc,
                    kpi,
                    "diff_ci_low",
                    change_text(r["diff_ci_low"], unit),
                )
                dh = _cell(
                    r["diff_ci_high"],
                    unit,
                    sc,
                    kpi,
                    "diff_ci_high",
                    change_text(r["diff_ci_high"], unit),
                )
                extra = f"<br><b>change {d}</b> <span class='ci'>(95% CI {dl} to {dh})</span>"
            cells.append(f"<td class='num'>{text}<br><span class='ci'>{ci}</span>{extra}</td>")
        body.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    days = t.measured_days
    notes = head["note"].dropna().tolist() if "note" in head else []
    what = "mean (median where a few replications drive the mean)" if notes else "mean"
    return (
        f"<h2 id='headline'>Headline: {days:g} days measured, {what} of {t.replications} "
        f"replication(s) with 95% confidence intervals</h2>"
        f"<table class='headline'><tr><th></th>{cols}</tr>{''.join(body)}</table>"
        + "".join(f"<p class='reading few'>{html.escape(n)}</p>" for n in notes)
    )


def _median_html(r, unit: str) -> str:
    """The interval of a headline median, its bounds readable back from ``data-value``."""
    sc, kpi = r["scenario"], r["kpi"]
    lo, hi = (
        _cell(r[k], unit, sc, kpi, k, fmt(r[k], unit)) for k in ("median_ci_low", "median_ci_high")
    )
    if r["median_coverage"] >= 0.95:
        return f"95% CI {lo} to {hi} (of the median)"
    return f"range {lo} to {hi} (holds the median with {r['median_coverage']:.0%} confidence)"


def _table_html(df: pd.DataFrame, cls: str = "") -> str:
    return df.to_html(
        index=False, classes=cls, border=0, na_rep="", float_format=lambda x: f"{x:,.6g}"
    )


def _comparison_html(t: Tables) -> str:
    if t.comparison is None:
        return ""
    rows = []
    for kpi, label in scenarios.COMPARED:
        unit = "GBP" if kpi.endswith("_gbp") else ""
        for _, r in t.comparison[t.comparison["kpi"] == kpi].iterrows():
            sc = r["scenario"]
            cells = [
                _cell(
                    r[k],
                    unit,
                    sc,
                    kpi,
                    k,
                    change_text(r[k], unit) if k.startswith("diff") else fmt(r[k], unit),
                )
                for k in (
                    "baseline_mean",
                    "scenario_mean",
                    "diff_mean",
                    "diff_ci_low",
                    "diff_ci_high",
                )
            ]
            rows.append(
                f"<tr><td>{html.escape(label.strip())}</td><td>{html.escape(sc)}</td>"
                + "".join(f"<td class='num'>{c}</td>" for c in cells)
                + "</tr>"
            )
    return (
        "<h3>Paired changes against the baseline (same random numbers in every scenario)</h3>"
        "<table class='comparison'><tr><th>KPI</th><th>scenario</th><th>baseline</th>"
        "<th>scenario</th><th>change</th><th>95% CI low</th><th>95% CI high</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _appraisal_html(t: Tables) -> str:
    """The appraisal tables as written (capacity sweep, frontier, bottlenecks), for reading."""
    parts = []
    for name, heading in (
        ("capacity_sweep", "Cost against capacity (capacity_sweep.csv)"),
        ("allocation_frontier", "Best mix found at each budget (allocation_frontier.csv)"),
        ("bottlenecks", "Delayed bed days avoided by more capacity (bottlenecks.csv)"),
    ):
        df = getattr(t, name)
        if df is not None and not df.empty:
            parts.append(f"<h3>{heading}</h3>{_table_html(df, name)}")
    return "".join(parts)


def _grid(table: pd.DataFrame, across: str, columns: list[str], label=lambda m: m) -> str:
    """A table of ``national.py``'s long form: a row per ``measure``, a column per value of
    ``across`` (a pathway, a scenario); each cell the mean with its 95% interval, and the paired
    change against the baseline where the table has one."""
    body = []
    for measure, rows in table.groupby("measure", sort=False):
        cells = []
        for key, r in rows.set_index(across).reindex(columns).iterrows():
            if pd.isna(r["kpi"]):
                cells.append("<td></td>")
                continue
            u, k = r["unit"], r["kpi"]
            sc = key if across == "scenario" else r["scenario"]
            text = _cell(r["mean"], u, sc, k, "mean", fmt(r["mean"], u))
            ci = interval_text(r["ci_low"], r["ci_high"], u)
            extra = ""
            if not pd.isna(r.get("diff_mean")):
                d = _cell(r["diff_mean"], u, sc, k, "diff_mean", change_text(r["diff_mean"], u))
                lo, hi = change_text(r["diff_ci_low"], u), change_text(r["diff_ci_high"], u)
                extra = f"<br><b>change {d}</b> <span class='ci'>({lo} to {hi})</span>"
            cells.append(f"<td class='num'>{text}<br><span class='ci'>{ci}</span>{extra}</td>")
        body.append(f"<tr><th>{html.escape(label(measure))}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    return f"<tr><th></th>{head}</tr>{''.join(body)}"


def _national_html(t: Tables) -> str:
    """The discharge ready date measures by pathway and the delayed bed days by reason in each
    scheme (``national.py``), for each scenario, every number with its 95% interval."""
    if t.summary is None:
        return ""
    parts = []
    census = t.config.get("system", {}).get("nctr_census_time", "23:59")
    at_census = lambda m: m + (f" at {census}" if "daily count" in m else "")  # noqa: E731
    for sc in t.scenarios:
        drd = national.discharge_ready(t.summary, sc, t.comparison)
        if drd is not None:
            scopes = list(dict.fromkeys(drd["pathway"]))
            grid = _grid(drd.assign(scenario=sc), "pathway", scopes, at_census)
            parts.append(
                f"<h3>Discharge ready date measures, {html.escape(sc)} (NHS England's monthly "
                "discharge delays publication; 95% CI under each, and the paired change "
                "against the baseline where compared)</h3>"
                f"<table class='national'>{grid}</table>"
            )
        for scheme in national.schemes(t.config):
            table = national.reasons(t.summary, sc, scheme)
            if table is None:
                continue
            rows = "".join(
                f"<tr><td>{html.escape(r['code'])}</td><td>{html.escape(r['reason'])}</td>"
                f"<td class='num'>{_cell(r['mean'], '', sc, 'reason', r['code'], fmt(r['mean']))}"
                f"<br><span class='ci'>{interval_text(r['ci_low'], r['ci_high'])}</span></td>"
                f"<td class='num'>{fmt(r['share'], '%')}</td></tr>"
                for _, r in table.iterrows()
            )
            parts.append(
                f"<h3>Delayed bed days by reason: {html.escape(national.SCHEME_NAMES[scheme])}, "
                f"{html.escape(sc)}</h3><table class='reasons'><tr><th>code</th><th>waiting for"
                f"</th><th>delayed bed days (95% CI)</th><th>share</th></tr>{rows}</table>"
            )
    return "".join(parts)


def _organisations_html(t: Tables) -> str:
    """A page per organisation of the system (``national.organisations``): its residents' (a
    council) or its beds' (a trust) numbers in each scenario, with the paired change against the
    baseline: whose money saves whose beds."""
    if t.summary is None:
        return ""
    table = national.organisations(t.summary, t.comparison, t.config)
    if table is None:
        return ""
    parts = []
    scen = list(dict.fromkeys(table["scenario"]))
    for name, org in table.groupby("organisation", sort=False):
        first = org.iloc[0]
        whose = "its residents" if first["kind"] == "council" else "everyone in its beds"
        parts.append(
            f"<h3 id='org-{html.escape(name)}'>{html.escape(str(first['label']))} "
            f"({html.escape(first['kind'])}; the numbers of {whose}; 95% CI under each)</h3>"
            f"<table class='organisation'>{_grid(org, 'scenario', scen)}</table>"
        )
    return "".join(parts)


SECTIONS = (
    ("national", "Today's national measures: discharge ready date and delay reasons", ()),
    ("organisations", "Each organisation: whose money saves whose beds", ("whose_beds",)),
    ("flow", "How patients flow through the system", ("flow",)),
    ("causes", "What causes the delays", ("causes_",)),
    ("services", "Each service over time", ("service_",)),
    ("scenarios", "Scenarios and investments", ("forest", "cost_effectiveness")),
    (
        "appraisal",
        "Capacity, budget and bottlenecks",
        ("capacity_curve", "allocation_frontier", "bottlenecks"),
    ),
)


def html_report(t: Tables, figs: list[Figure], warns: list[str]) -> str:
    """The whole report as one HTML string, plotly.js inlined once, no network requests."""
    from plotly.offline import get_plotlyjs

    m, cfg = t.manifest, t.config
    system = cfg.get("system", {}).get("name", "?")
    what = " vs ".join(t.scenarios) if t.scenarios else "appraisal"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>flowsim summit pack: {html.escape(system)} system</title>",
        f"<style>{CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>Patient flow and delayed discharges: {html.escape(system)} system</h1>",
        f"<p class='sub'>{html.escape(what)} &middot; seed {m.get('seed')} &middot; "
        f"{t.replications} replication(s) &middot; warm-up {t.window['warmup_days']:g} days, "
        f"{t.measured_days:g} days measured &middot; config {str(m.get('config_hash', ''))[:12]}"
        f" &middot; built {dt.date.today().isoformat()} by flowsim "
        f"{m.get('versions', {}).get('flowsim', '')}</p>",
    ]
    if warns:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warns)
        parts.append(
            f"<div class='warn' role='alert' id='warnings'><b>Read with care: the evidence is "
            f"thin</b><ul>{items}</ul></div>"
        )
    parts.append(_headline_html(t, headline(t)))
    for sid, heading, prefixes in SECTIONS:
        chosen = [f for f in figs if prefixes and f.key.startswith(prefixes)]
        extra = {
            "national": _national_html,
            "organisations": _organisations_html,
            "scenarios": _comparison_html,
            "appraisal": _appraisal_html,
        }.get(sid, lambda _: "")(t)
        if not chosen and not extra:
            continue
        parts.append(f"<h2 id='{sid}'>{heading}</h2>")
        for f in chosen:
            div = f.figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"fig-{f.key}",
                config={"displaylogo": False, "responsive": True},
            )
            parts.append(f"{div}<p class='reading'>{html.escape(f.reading)}</p>")
        parts.append(extra)
    parts.append("<h2 id='provenance'>Assumptions and provenance</h2>")
    parts.append(_table_html(provenance.stress_des(t), "stress"))
    parts.append(
        "<details><summary>Every parameter, with its source</summary>"
        + _table_html(provenance.parameters(t), "parameters")
        + "</details>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


# -- the pack ---------------------------------------------------------------------------------

NO_BROWSER = (
    "figures/ (PNG and SVG for slides) not written: kaleido found no Chrome or Chromium. "
    "Install one (Debian/Ubuntu: sudo apt-get install chromium; or run plotly_get_chrome), then "
    "rebuild with: flowsim-report {out_dir}"
)


def export_images(figs: list[Figure], folder: Path) -> list[Path] | None:
    """PNG and SVG of every figure in one kaleido batch; ``None`` (and one message) without a
    browser. Files are written to a temporary folder first, then moved into place."""
    import shutil
    import tempfile

    import plotly.io as pio
    from choreographer.errors import ChromeNotFoundError

    for name in ("kaleido", "choreographer", "logistro"):  # their INFO chatter is not for users
        logging.getLogger(name).setLevel(logging.WARNING)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".figures."))
    files.usual_mode(tmp, directory=True)
    try:
        images = [tmp / f"{f.key}.{ext}" for f in figs for ext in ("png", "svg")]
        figures_twice = [f.figure for f in figs for _ in ("png", "svg")]
        pio.write_images(figures_twice, images, width=1200, scale=1)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        chain = [exc, exc.__cause__, exc.__context__]  # plotly re-raises kaleido's as RuntimeError
        if any(isinstance(e, ChromeNotFoundError) for e in chain):
            return None
        raise
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return [folder / f.name for f in images]


def build(out_dir: Path, images: bool = True) -> list[str]:
    """Write the pack into ``out_dir`` from its tables; returns the names of the files written."""
    out_dir = Path(out_dir)
    t = load(out_dir)
    figs = figures.all_figures(t)
    warns = warnings(t)
    files.write_atomic(
        out_dir / "report.html",
        lambda tmp: Path(tmp).write_text(html_report(t, figs, warns), encoding="utf-8"),
    )
    written = ["report.html"]
    folder = out_dir / "figures"
    pngs = {p.stem: p for p in folder.glob("*.png")} if folder.is_dir() else {}
    if images and figs:
        images = export_images(figs, folder)
        if images is None:
            log.warning(NO_BROWSER.format(out_dir=out_dir))
        else:
            pngs = {p.stem: p for p in images if p.suffix == ".png"}
            written.append("figures/")
    head = headline(t)
    files.write_atomic(
        out_dir / "summit_pack.xlsx",
        lambda tmp: workbook.write(
            Path(tmp), t, head, provenance.parameters(t), provenance.stress_des(t), warns
        ),
    )
    files.write_atomic(
        out_dir / "summit_pack.pptx",
        lambda tmp: deck.write(Path(tmp), t, head, figs, pngs, warns),
    )
    written += ["summit_pack.xlsx", "summit_pack.pptx"]
    return written


def main(argv: list[str] | None = None) -> int:
    """``flowsim-report <folder> [--no-figures]``: rebuild the summit pack from the tables."""
    parser = argparse.ArgumentParser(
        prog="flowsim-report",
        description="Rebuild the summit pack (report.html, figures/, summit_pack.xlsx and "
        "summit_pack.pptx) of a flowsim output folder from its saved tables.",
    )
    parser.add_argument("folder", type=Path, help="a flowsim output folder (has manifest.json)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG/SVG export")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        written = build(args.folder, images=not args.no_figures)
    except ReportError as err:
        print(f"flowsim-report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(written)} to {args.folder}")
    return 0


def entry() -> None:
    sys.exit(main())
