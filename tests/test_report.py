"""The summit pack (report.html, figures/, summit_pack.xlsx, summit_pack.pptx) from real runs: it
opens offline in a real headless Chromium with every figure drawn, asks for nothing on the
network, and its numbers are the numbers of summary.csv and comparison.csv.

The browser tests need Chrome or Chromium on the machine (Debian: ``apt-get install chromium``);
without one they are skipped, unless ``FLOWSIM_REQUIRE_BROWSER=1`` (set by ``.ci/run``)."""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowsim import deck, figures, files, report, uncertainty, wording
from flowsim.wording import fmt

sys.path.insert(0, str(Path(__file__).parent))
import browser  # noqa: E402  (helper modules next to this file)
from console import script  # noqa: E402

SHORT = ["run.horizon_days=150", "run.warmup_days=60", "run.jobs=1"]


@pytest.fixture(scope="module")
def packs(tmp_path_factory) -> dict[str, Path]:
    """Three real runs, two at a time: one replication; a comparison of two scenarios (one with
    no effect in the default system, home care never being full); an appraisal."""
    asked = {
        "one": ["run.replications=1"],
        "comparison": ["run.replications=3", "compare=[ibcf_reablement,home_care_hours]"],
        "appraisal": [
            "run.replications=2",
            "run.figures=false",
            "appraise.capacity_sweep.service=reablement",
            "appraise.capacity_sweep.capacities=[280,320]",
            "appraise.bottleneck_units=10",
        ],
    }
    env = {k: v for k, v in os.environ.items() if k != "FLOWSIM_ROOT"}
    out, procs = {}, {}
    for name, overrides in asked.items():
        cwd = tmp_path_factory.mktemp(name)
        out[name] = cwd / "out"
        procs[name] = subprocess.Popen(
            [script("flowsim"), *overrides, *SHORT, f"hydra.run.dir={out[name]}"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if len(procs) == 2:  # two cores
            for p in procs.values():
                p.wait(timeout=600)
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, f"{name}: rc={p.returncode}\n{stdout}\n{stderr}"
        assert "Traceback" not in stderr, stderr
    return out


@pytest.fixture(scope="module")
def tables(packs) -> dict[str, report.Tables]:
    return {name: report.load(d) for name, d in packs.items()}


def _need_browser() -> None:
    if browser.find_browser() is None:
        if os.environ.get("FLOWSIM_REQUIRE_BROWSER") == "1":
            pytest.fail("no Chrome or Chromium found, and FLOWSIM_REQUIRE_BROWSER=1")
        pytest.skip("no Chrome or Chromium on this machine (Debian: apt-get install chromium)")


# -- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["one", "comparison", "appraisal"])
def test_every_run_writes_the_pack(packs, name):
    files = {p.name for p in packs[name].iterdir()}
    assert {"report.html", "summit_pack.xlsx", "summit_pack.pptx", "manifest.json"} <= files
    assert not [f for f in files if f.endswith(".tmp") or f.startswith(".")]


@pytest.mark.parametrize("name", ["one", "comparison"])
def test_figures_folder_has_png_and_svg_of_every_figure(packs, tables, name):
    _need_browser()
    expected = {f.key for f in figures.all_figures(tables[name])}
    folder = packs[name] / "figures"
    assert {p.stem for p in folder.glob("*.png")} == expected
    assert {p.stem for p in folder.glob("*.svg")} == expected
    for p in folder.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5_000
        assert not browser.screenshot_is_blank(p.read_bytes()), p.name
    for p in folder.glob("*.svg"):
        assert "<svg" in p.read_text()[:500]


def test_appraisal_without_figures_writes_no_folder(packs):
    assert not (packs["appraisal"] / "figures").exists()  # run.figures=false


# -- offline, self-contained HTML --------------------------------------------------------------


class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if tag in ("script", "link", "img", "iframe") and re.match(
                r"(?i)\s*(https?:)?//", a.get(key) or ""
            ):
                self.remote.append(f"<{tag} {key}={a[key]}>")
        if tag == "script" and not a.get("src"):
            self.inline_scripts += 1


@pytest.mark.parametrize("name", ["one", "comparison", "appraisal"])
def test_html_is_one_self_contained_file(packs, name):
    text = (packs[name] / "report.html").read_text(encoding="utf-8")
    parser = _Sources()
    parser.feed(text)
    assert parser.remote == []  # no script, stylesheet or image from the network
    assert not re.search(r"""(?i)<(script|link)[^>]+(src|href)\s*=\s*["']?https?:""", text)
    # plotly.js is inlined exactly once, however many figures there are
    assert len(re.findall(r"\* plotly\.js v\d", text)) == 1
    assert (packs[name] / "report.html").stat().st_size < 10 * 1024 * 1024


@pytest.fixture(scope="module")
def opened(packs) -> dict[str, browser.PageCheck]:
    _need_browser()
    return {name: browser.open_offline(packs[name] / "report.html") for name in packs}


@pytest.mark.parametrize("name", ["one", "comparison", "appraisal"])
def test_report_renders_offline_in_chromium(opened, tables, name):
    page = opened[name]
    assert page.page_errors == [], page.page_errors
    assert page.console_errors == [], page.console_errors
    assert page.network_requests == [], page.network_requests
    expected = len(figures.all_figures(tables[name]))
    assert expected >= 2
    assert page.graphs_expected == expected
    assert page.graphs_rendered == expected
    assert not browser.screenshot_is_blank(page.screenshot_png)
    assert "Assumptions and provenance" in page.text


def test_report_reads_in_summit_order(opened):
    text = opened["comparison"].text
    order = [
        "Headline",
        "How patients flow",
        "What causes the delays",
        "Each service over time",
        "Scenarios and investments",
        "Assumptions and provenance",
    ]
    positions = [text.find(h) for h in order]
    assert -1 not in positions, dict(zip(order, positions))
    assert positions == sorted(positions)


# -- the numbers are the tables' numbers -------------------------------------------------------


class _Numbers(HTMLParser):
    """Every ``<span data-kpi ...>`` of the report: (scenario, kpi, stat) -> (value, shown text)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
        self._open: tuple | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "span" and "data-kpi" in a:
            self._open = (a["data-scenario"], a["data-kpi"], a["data-stat"], float(a["data-value"]))

    def handle_data(self, data):
        if self._open is not None:
            sc, kpi, stat, value = self._open
            self.found.setdefault((sc, kpi, stat), []).append((value, data))
            self._open = None


def _numbers(path: Path) -> dict:
    p = _Numbers()
    p.feed(path.read_text(encoding="utf-8"))
    return p.found


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("name", ["one", "comparison"])
def test_html_headline_numbers_equal_summary_csv(packs, name):
    found = _numbers(packs[name] / "report.html")
    summary = pd.read_csv(packs[name] / "summary.csv")
    checked = 0
    for kpi, _, unit in report.HEADLINE:
        for _, r in summary[summary["kpi"] == kpi].iterrows():
            for stat in ("mean", "ci_low", "ci_high"):
                if math.isnan(r[stat]) and stat != "mean":  # the report says "no interval"
                    assert (r["scenario"], kpi, stat) not in found
                    checked += 1
                    continue
                shown = found[(r["scenario"], kpi, stat)]
                assert all(_same(v, float(r[stat])) for v, _ in shown), (kpi, stat, shown, r[stat])
                assert all(text == fmt(float(r[stat]), unit) for _, text in shown)
                checked += 1
    assert checked == 3 * len(report.HEADLINE) * summary["scenario"].nunique()


@pytest.mark.parametrize("name", ["one", "comparison"])
def test_html_national_measures_equal_summary_csv(packs, name):
    """The discharge ready date table shows every scope's measures, each the summary's mean."""
    found = _numbers(packs[name] / "report.html")
    summary = pd.read_csv(packs[name] / "summary.csv")
    drd = summary[summary["kpi"].str.startswith(("drd_", "nctr_census_mean"))]
    assert len(drd) > 0
    for _, r in drd.iterrows():
        shown = found.get((r["scenario"], r["kpi"], "mean"))
        if r["kpi"].startswith("drd_delayed_discharges"):
            assert shown is None  # not a row of the publication's table
            continue
        assert shown and all(_same(v, float(r["mean"])) for v, _ in shown), r["kpi"]
    assert "id='national'" in (packs[name] / "report.html").read_text(encoding="utf-8")
    if name != "comparison":
        return
    # and, for a compared scenario, each measure's paired change is comparison.csv's
    comparison = pd.read_csv(packs[name] / "comparison.csv")
    changes = comparison[comparison["kpi"].str.startswith("drd_days_0_share")]
    assert len(changes) > 0
    for _, r in changes.iterrows():
        shown = found.get((r["scenario"], r["kpi"], "diff_mean"))
        assert shown and all(_same(v, float(r["diff_mean"])) for v, _ in shown), r["kpi"]


def test_html_changes_equal_comparison_csv(packs):
    found = _numbers(packs["comparison"] / "report.html")
    comparison = pd.read_csv(packs["comparison"] / "comparison.csv")
    checked = 0
    for _, r in comparison.iterrows():
        for stat in ("diff_mean", "diff_ci_low", "diff_ci_high"):
            for value, _ in found.get((r["scenario"], r["kpi"], stat), []):
                assert _same(value, float(r[stat])), (r["scenario"], r["kpi"], stat)
                checked += 1
    # every headline KPI and every printed comparison KPI, for both scenarios
    assert checked >= 2 * 3 * len(report.HEADLINE)


# float64 written to XLSX keeps 16 significant digits (XlsxWriter and openpyxl both write %.16g),
# so a value read back may differ from the CSV's round-trip repr in its last bit: 1e-15 relative.
XLSX_RTOL = 1e-15


def _assert_frames_match(sheet: pd.DataFrame, table: pd.DataFrame) -> None:
    assert list(sheet.columns) == list(table.columns)
    assert len(sheet) == len(table)
    for col in table.columns:
        a, b = sheet[col], table[col]
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            np.testing.assert_allclose(
                a.to_numpy(float),
                b.to_numpy(float),
                rtol=XLSX_RTOL,
                atol=0,
                equal_nan=True,
                err_msg=col,
            )
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), col


def test_workbook_equals_the_tables(packs):
    book = pd.read_excel(packs["comparison"] / "summit_pack.xlsx", sheet_name=None)
    assert list(book)[:7] == ["About", "Headline", "Summary", "Comparison",
                              "Discharge ready date", "Delay reasons", "Daily"]  # fmt: skip
    _assert_frames_match(book["Summary"], pd.read_csv(packs["comparison"] / "summary.csv"))
    # the national measures: the same numbers as summary.csv, every scenario, both schemes
    summary_rows = pd.read_csv(packs["comparison"] / "summary.csv").set_index(["scenario", "kpi"])
    drd = book["Discharge ready date"]
    assert set(drd["scenario"]) == set(summary_rows.index.get_level_values(0))
    for _, r in drd.iterrows():
        assert math.isclose(r["mean"], summary_rows.loc[(r["scenario"], r["kpi"]), "mean"],
                            rel_tol=XLSX_RTOL)  # fmt: skip
    why = book["Delay reasons"]
    assert why["scheme"].nunique() == 2
    for (_, scheme), grp in why.groupby(["scenario", "scheme"]):
        assert grp["share"].sum() == pytest.approx(1.0, rel=1e-6), scheme
    _assert_frames_match(book["Comparison"], pd.read_csv(packs["comparison"] / "comparison.csv"))
    # the headline sheet: the same numbers as summary.csv
    summary = pd.read_csv(packs["comparison"] / "summary.csv").set_index(["scenario", "kpi"])
    head = book["Headline"]
    assert len(head) == 3 * len(report.HEADLINE)
    for _, r in head.iterrows():
        for stat in ("mean", "ci_low", "ci_high"):
            want = summary.loc[(r["scenario"], r["kpi"]), stat]
            assert _same(r[stat], want) or math.isclose(r[stat], want, rel_tol=XLSX_RTOL)


def test_workbook_daily_bands_and_parameters(packs, tables):
    book = pd.read_excel(packs["comparison"] / "summit_pack.xlsx", sheet_name=None)
    daily = book["Daily"]
    t = tables["comparison"]
    places = t.daily["service"].nunique()
    assert len(daily) == 3 * places * t.daily["day"].nunique()
    for col in ("occupancy_mean", "delayed_mean", "waiting_mean"):
        assert (daily[f"{col}_p5"] <= daily[f"{col}_p50"] + 1e-9).all()
        assert (daily[f"{col}_p50"] <= daily[f"{col}_p95"] + 1e-9).all()
    # a day's median over replications, recomputed from daily.parquet
    d = t.daily[(t.daily["service"] == "acute") & (t.daily["day"] == 100)]
    for scenario, grp in d.groupby("scenario"):
        row = daily[
            (daily["scenario"] == scenario) & (daily["service"] == "acute") & (daily["day"] == 100)
        ]
        assert math.isclose(
            row["occupancy_mean_p50"].iloc[0], grp["occupancy_mean"].median(), rel_tol=1e-12
        )
    params = book["Parameters"].set_index("parameter")
    assert params.loc["system.services.acute.capacity", "value"] == 750
    assert "King's Fund" in params.loc["system.services.acute.capacity", "source"]
    assert (params["source"].fillna("") != "").mean() > 0.5  # most parameters name a source


def _deck(path: Path):
    from pptx import Presentation

    return Presentation(str(path))


def _table(prs):
    for slide in prs.slides:
        for shape in slide.shapes:
            if shape.has_table:
                return shape.table
    raise AssertionError("no headline table in the deck")


@pytest.mark.parametrize("name", ["one", "comparison"])
def test_deck_headline_equals_summary_csv(packs, name):
    """Each cell of the deck's headline table shows summary.csv's mean and CI (and
    comparison.csv's paired change), formatted as the report formats them."""
    prs = _deck(packs[name] / "summit_pack.pptx")
    table = _table(prs)
    summary = pd.read_csv(packs[name] / "summary.csv").set_index(["scenario", "kpi"])
    comparison = None
    if (packs[name] / "comparison.csv").exists():
        comparison = pd.read_csv(packs[name] / "comparison.csv").set_index(["scenario", "kpi"])
    scenarios = [table.cell(0, j).text for j in range(1, len(table.columns))]
    assert scenarios == list(dict.fromkeys(summary.index.get_level_values(0)))
    labels = {label: (kpi, unit) for kpi, label, unit in report.HEADLINE}
    for i in range(1, len(table.rows)):
        kpi, unit = labels[table.cell(i, 0).text]
        for j, scenario in enumerate(scenarios, start=1):
            text = table.cell(i, j).text
            s = summary.loc[(scenario, kpi)]
            assert text.splitlines()[0] == fmt(s["mean"], unit)
            if math.isnan(s["ci_low"]):
                assert "no interval" in text
            else:
                assert f"95% CI {fmt(s['ci_low'], unit)} to {fmt(s['ci_high'], unit)}" in text
            if comparison is not None and scenario != "baseline":
                c = comparison.loc[(scenario, kpi)]
                if math.isnan(c["diff_mean"]):
                    assert "change" not in text
                    continue
                assert f"change {wording.change_text(c['diff_mean'], unit)} " in text
    assert len(table.rows) == len(report.HEADLINE) + 1


def test_deck_has_title_and_a_slide_per_key_figure(packs, tables):
    prs = _deck(packs["comparison"] / "summit_pack.pptx")
    slides = list(prs.slides)
    assert any(
        "default system" in sh.text_frame.text for sh in slides[0].shapes if sh.has_text_frame
    )
    figs = [f for f in figures.all_figures(tables["comparison"]) if f.key in deck.KEY_FIGURES]
    assert len(figs) >= 6
    by_note = {s.notes_slide.notes_text_frame.text: s for s in slides if s.has_notes_slide}
    for f in figs:
        slide = by_note[f"figure: {f.key}"]
        texts = [sh.text_frame.text for sh in slide.shapes if sh.has_text_frame]
        assert f.title in texts and f.reading in texts
        if browser.find_browser() is not None:
            assert any(sh.shape_type == 13 for sh in slide.shapes), f.key  # 13: a picture


# -- thin evidence is flagged --------------------------------------------------------------------


def test_one_replication_is_flagged_everywhere(packs):
    html_text = (packs["one"] / "report.html").read_text(encoding="utf-8")
    assert re.search(r"id='warnings'.*Only one replication", html_text, re.S)
    about = pd.read_excel(packs["one"] / "summit_pack.xlsx", sheet_name="About")
    assert about["value"].astype(str).str.contains("Only one replication").any()
    texts = [
        sh.text_frame.text
        for s in _deck(packs["one"] / "summit_pack.pptx").slides
        for sh in s.shapes
        if sh.has_text_frame
    ]
    assert any("Only one replication" in t for t in texts)


def test_an_effect_the_runs_cannot_tell_from_none_is_flagged(tables):
    warns = report.warnings(tables["comparison"])
    c = tables["comparison"].comparison
    d = c[c["kpi"] == "delayed_bed_days"].set_index("scenario")
    for scenario, r in d.iterrows():
        flagged = any(w.startswith(f"{scenario}: the 95% interval") for w in warns)
        assert flagged == (r["diff_ci_low"] <= 0 <= r["diff_ci_high"]), (scenario, warns)
    # home care is never full in the default system: more of it changes nothing
    assert any(w.startswith("home_care_hours: the 95% interval") for w in warns)


def test_few_replications_are_flagged_and_enough_are_not(tables):
    t = tables["comparison"]
    assert any("Only 3 replications" in w for w in report.warnings(t))
    many = report.Tables(t.out_dir, t.manifest, summary=t.summary.assign(n=20))
    assert not any("replication" in w for w in report.warnings(many))


# -- the flows behind the Sankey --------------------------------------------------------------


def test_flows_agree_with_the_kpis(packs):
    flows = pd.read_parquet(packs["comparison"] / "flows.parquet")
    runs = pd.read_parquet(packs["comparison"] / "runs.parquet")
    for (scenario, rep), f in flows.groupby(["scenario", "replication"]):
        kpi = runs[(runs["scenario"] == scenario) & (runs["replication"] == rep)].iloc[0]
        out_of_acute = f[f["source"] == "acute"].set_index("target")["patients"]
        pathways = out_of_acute[out_of_acute.index.str.startswith("P")]
        assert pathways.sum() == kpi["discharges"]
        for p, n in pathways.items():
            assert n == kpi[f"discharges_{p}"]
            assert f[f["source"] == p]["patients"].sum() == n  # a pathway passes everyone on
        into_acute = f[f["target"] == "acute"].set_index("source")["patients"]
        assert into_acute.sum() == kpi["admissions"]
        assert into_acute.get("readmitted", 0) == kpi["readmissions"]


# -- rebuilt from the tables alone, without SimPy -----------------------------------------------


def test_flowsim_report_rebuilds_the_same_report_without_simpy(packs, tmp_path):
    src = packs["comparison"]
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (
        "summary.csv",
        "comparison.csv",
        "runs.parquet",
        "daily.parquet",
        "flows.parquet",
        "manifest.json",
    ):
        shutil.copy(src / name, copy / name)
    code = (
        "import sys, runpy; sys.argv = ['flowsim-report', sys.argv[1], '--no-figures'];"
        "from flowsim import report; rc = report.main(sys.argv[1:]);"
        "assert 'simpy' not in sys.modules, 'the report imported SimPy'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(copy)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (copy / "report.html").read_text() == (src / "report.html").read_text()
    assert {"summit_pack.xlsx", "summit_pack.pptx"} <= {p.name for p in copy.iterdir()}


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _lines(keep: int):
    def damage(path: Path) -> None:  # cut at a line's end: the file still parses
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:keep]))

    return damage


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff not a table \x9c\n" * 40)


DAMAGED = {
    # id: (pack copied, file damaged, damage, what stderr says of it); the first six run the
    # console script (it starts in ~3 s), the others call report.main in this process
    "runs_truncated": ("comparison", "runs.parquet", _cut, "is damaged"),
    "daily_missing": ("comparison", "daily.parquet", Path.unlink, "is missing"),
    "summary_truncated": ("comparison", "summary.csv", _cut, "is damaged"),
    "manifest_truncated": ("comparison", "manifest.json", _cut, "is damaged"),
    "empty_folder": (None, "manifest.json", None, "is missing"),
    "missing_folder": (None, "", None, "does not exist"),
    "daily_empty": ("comparison", "daily.parquet", lambda p: p.write_bytes(b""), "is damaged"),
    "flows_truncated": ("comparison", "flows.parquet", _cut, "is damaged"),
    "summary_cut_at_a_line_end": ("comparison", "summary.csv", _lines(20), "does not match"),
    "summary_not_csv": ("comparison", "summary.csv", _garbage, "is damaged"),
    "comparison_missing": ("comparison", "comparison.csv", Path.unlink, "is missing"),
    "manifest_missing": ("one", "manifest.json", Path.unlink, "is missing"),
    "sweep_missing": ("appraisal", "capacity_sweep.csv", Path.unlink, "is missing"),
    "sweep_runs_truncated": ("appraisal", "capacity_sweep_runs.parquet", _cut, "is damaged"),
}
IN_A_SUBPROCESS = list(DAMAGED)[:6]


def _snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder`` (hidden ones too), with its mtime and bytes; the
    folder's own mtime changes if a file is made in it, even one removed again."""
    if not folder.exists():
        return {}
    out = {".": folder.stat().st_mtime_ns}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = (p.stat().st_mtime_ns, p.is_file() and p.read_bytes())
    return out


def _damage(packs, root: Path, case: str) -> Path:
    pack, name, damage, _ = DAMAGED[case]
    folder = root / case
    if pack is not None:
        shutil.copytree(packs[pack], folder)
        damage(folder / name)
    elif name:
        folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def damaged(packs, tmp_path_factory) -> dict:
    """``flowsim-report`` on damaged copies of the packs, the console script's cases all started
    at once: case -> (exit code, stdout, stderr, folder, its snapshot before)."""
    root = tmp_path_factory.mktemp("damaged")
    started = {}
    for case in IN_A_SUBPROCESS:
        folder = _damage(packs, root, case)
        before = _snapshot(folder)
        proc = subprocess.Popen(
            [script("flowsim-report"), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[case] = (proc, folder, before)
    done = {}
    for case, (proc, folder, before) in started.items():
        stdout, stderr = proc.communicate(timeout=300)
        done[case] = (proc.returncode, stdout, stderr, folder, before)
    return done


@pytest.mark.parametrize("case", list(DAMAGED))
def test_flowsim_report_names_a_missing_or_damaged_file_and_writes_nothing(
    damaged, packs, tmp_path, capsys, case
):
    """One plain line naming the file and what is wrong, exit code 2, no traceback, and the
    folder as it was (no report.html, figures/, workbook or deck made or changed)."""
    if case in damaged:
        rc, stdout, stderr, folder, before = damaged[case]
    else:
        folder = _damage(packs, tmp_path, case)
        before = _snapshot(folder)
        rc = report.main([str(folder)])  # raises (a traceback) on anything but a ReportError
        stdout, stderr = capsys.readouterr()
    _, name, _, words = DAMAGED[case]
    said = stdout + stderr
    assert rc == 2, said
    assert "Traceback" not in said, said
    line = stderr.strip()
    assert "\n" not in line and line.startswith("flowsim-report: "), said
    assert f"{folder / name if name else folder} {words}" in line, said
    assert _snapshot(folder) == before
    assert folder.exists() == bool(name)


def test_without_a_browser_the_html_is_still_written_and_one_message_says_why(packs, tmp_path):
    copy = tmp_path / "nobrowser"
    shutil.copytree(packs["one"], copy)
    shutil.rmtree(copy / "figures", ignore_errors=True)
    (copy / "report.html").unlink()
    env = {**os.environ, "BROWSER_PATH": str(tmp_path / "no-such-browser")}
    proc = subprocess.run(
        [script("flowsim-report"), str(copy)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    assert said.count("apt-get install chromium") == 1
    assert (copy / "report.html").exists() and not (copy / "figures").exists()
    assert "Traceback" not in said


def test_manifest_records_the_window_that_ran(packs):
    m = json.loads((packs["comparison"] / "manifest.json").read_text())
    assert m["window"]["measured_days"] == m["window"]["horizon_days"] - m["window"]["warmup_days"]
    assert m["window"]["horizon_days"] == 150


def test_a_warm_up_too_short_for_the_queues_is_flagged(tables):
    """Acute occupancy that climbs for 120 days and then holds (a queue still filling) read
    with a 10-day warm-up: MSER-5 asks for ~120 days and the report says so."""
    t = tables["comparison"]
    days = np.arange(400)
    rng = np.random.default_rng(7)
    frames = []
    for rep in range(3):
        level = np.minimum(days, 120) * 5.0 + rng.normal(0, 3, days.size)
        frames.append(
            pd.DataFrame(
                {
                    "scenario": "baseline",
                    "replication": rep,
                    "day": days,
                    "service": "acute",
                    "occupancy_mean": level,
                    "delayed_mean": level / 10,
                }
            )
        )
    ramp = pd.concat(frames, ignore_index=True)
    short = report.Tables(
        t.out_dir,
        {**t.manifest, "window": {"warmup_days": 10, "horizon_days": 400}},
        summary=t.summary.assign(n=20),
        daily=ramp,
    )
    warns = report.warnings(short)
    assert any(w.startswith("warm-up may be too short for baseline") for w in warns), warns
    long_enough = report.Tables(
        t.out_dir,
        {**t.manifest, "window": {"warmup_days": 200, "horizon_days": 400}},
        summary=t.summary.assign(n=20),
        daily=ramp,
    )
    assert not any(w.startswith("warm-up") for w in report.warnings(long_enough))
    html_text = report.html_report(short, [], warns)
    assert re.search(r"id='warnings'.*warm-up may be too short", html_text, re.S)


# -- a KPI whose mean a few replications drive is headlined by its median ----------------------


def _row_html(text: str, label: str) -> str:
    """The headline table's row of one KPI."""
    return re.search(rf"<tr><th>{re.escape(html.escape(label))}</th>.*?</tr>", text).group(0)


@pytest.fixture(scope="module")
def skewed(packs, tmp_path_factory) -> Path:
    """The comparison pack with boarding hours that one replication of three drives in every
    scenario: runs.parquet's column replaced (its provenance kept), summary.csv and comparison.csv
    remade from it as flowsim makes them, and the pack rebuilt by flowsim-report."""
    import pyarrow.parquet as pq

    from flowsim import scenarios, uncertainty

    folder = tmp_path_factory.mktemp("skewed") / "out"
    shutil.copytree(packs["comparison"], folder)
    runs = pd.read_parquet(folder / "runs.parquet")
    rng = np.random.default_rng(9)
    big = runs["replication"] == 1
    runs["boarding_hours"] = np.where(
        big, rng.uniform(2e5, 4e5, len(runs)), rng.uniform(0.0, 50.0, len(runs))
    )
    meta = json.loads(pq.read_schema(folder / "runs.parquet").metadata[b"flowsim"])
    files.write_parquet(runs, folder / "runs.parquet", meta)
    files.write_csv(uncertainty.summary(runs), folder / "summary.csv")
    files.write_csv(scenarios.compare(runs), folder / "comparison.csv")
    proc = subprocess.run(
        [script("flowsim-report"), str(folder), "--no-figures"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return folder


def test_report_headlines_the_median_where_a_few_replications_drive_the_mean(packs, skewed):

    runs = pd.read_parquet(skewed / "runs.parquet")
    summary = pd.read_csv(skewed / "summary.csv").set_index(["scenario", "kpi"])
    text = (skewed / "report.html").read_text(encoding="utf-8")
    found = _numbers(skewed / "report.html")
    label = dict((k, lab) for k, lab, _ in report.HEADLINE)["boarding_hours"]
    for scenario, grp in runs.groupby("scenario"):
        x = grp["boarding_hours"].to_numpy()
        assert uncertainty.driven_by_few(x) == 1
        median, lo, hi, cover = uncertainty.median_interval(x)
        assert cover == pytest.approx(0.75)  # 3 replications: the range, and it says so
        for stat, value in (("median", median), ("median_ci_low", lo), ("median_ci_high", hi)):
            assert found[(scenario, "boarding_hours", stat)] == [(value, fmt(value))]
        # the mean is still shown beside it, as summary.csv has it
        mean = summary.loc[(scenario, "boarding_hours"), "mean"]
        assert found[(scenario, "boarding_hours", "mean")] == [(mean, fmt(mean))]
        note = f"{scenario}: " + uncertainty.few_sentence(label, x, fmt)
        assert html.escape(note) in text
        assert re.search(rf"id='warnings'.*{re.escape(html.escape(note))}", text, re.S)
    row = _row_html(text, label)
    assert "median" in row and "holds the median with 75% confidence" in row
    assert "mean (median where a few replications drive the mean)" in text
    # every other headline KPI reads exactly as before
    before = (packs["comparison"] / "report.html").read_text(encoding="utf-8")
    for kpi, other, _ in report.HEADLINE:
        if kpi != "boarding_hours":
            assert _row_html(text, other) == _row_html(before, other), kpi


def test_workbook_and_deck_headline_the_same_median(skewed):

    runs = pd.read_parquet(skewed / "runs.parquet")
    head = pd.read_excel(skewed / "summit_pack.xlsx", sheet_name="Headline")
    for _, r in head.iterrows():
        x = runs.loc[runs["scenario"] == r["scenario"], r["kpi"]].to_numpy()
        if r["kpi"] != "boarding_hours":
            assert math.isnan(r["median"]) and pd.isna(r["note"])
            continue
        median, lo, hi, cover = uncertainty.median_interval(x)
        got = [r[k] for k in ("median", "median_ci_low", "median_ci_high", "median_coverage")]
        np.testing.assert_allclose(got, [median, lo, hi, cover], rtol=XLSX_RTOL, atol=0)
        assert "the median is shown" in r["note"]
    about = pd.read_excel(skewed / "summit_pack.xlsx", sheet_name="About").set_index("item")
    assert "distribution-free" in about.loc["median", "value"]
    prs = _deck(skewed / "summit_pack.pptx")
    table = _table(prs)
    labels = [table.cell(i, 0).text for i in range(len(table.rows))]
    i = labels.index(dict((k, lab) for k, lab, _ in report.HEADLINE)["boarding_hours"])
    for j in range(1, len(table.columns)):
        x = runs.loc[runs["scenario"] == table.cell(0, j).text, "boarding_hours"].to_numpy()
        lines = table.cell(i, j).text.splitlines()
        assert lines[0] == f"{fmt(uncertainty.median_interval(x)[0])} median"
        assert lines[2].startswith(f"mean {fmt(x.mean())} (95% CI")
    texts = [sh.text_frame.text for s in prs.slides for sh in s.shapes if sh.has_text_frame]
    assert any("is driven by one of 3 replications" in t for t in texts)


def test_twenty_replications_give_the_median_a_95_percent_interval(tables):
    """Boarding hours overflowing in 3 of 20 replications (the issue's case), in memory: the
    median with its 95% interval, the mean beside it, the note; the other KPIs as before."""

    t = tables["comparison"]
    rng = np.random.default_rng(20)
    runs = pd.DataFrame({"scenario": "baseline", "replication": range(20)})
    for kpi, _, _ in report.HEADLINE:
        runs[kpi] = rng.normal(1000.0, 30.0, 20)
    boarding = rng.lognormal(np.log(1424.0), 0.6, 20)
    boarding[[4, 11, 16]] = rng.uniform(2e5, 4e5, 3)
    runs["boarding_hours"] = boarding
    runs["admissions"] = 60_000.0
    summary = uncertainty.summary(runs)
    many = report.Tables(t.out_dir, t.manifest, summary=summary, runs=runs, scenarios=["baseline"])
    head = report.headline(many).set_index("kpi")
    median, lo, hi, cover = uncertainty.median_interval(boarding)
    assert cover >= 0.95
    r = head.loc["boarding_hours"]
    assert (r["median"], r["median_ci_low"], r["median_ci_high"]) == (median, lo, hi)
    assert head.drop("boarding_hours")["median"].isna().all()
    warns = report.warnings(many)
    assert r["note"] in warns and r["note"].startswith("Hours waited for an acute bed")
    assert "front door overflows" in r["note"] and "only" not in r["note"]
    text = report.html_report(many, [], warns)
    label = dict((k, lab) for k, lab, _ in report.HEADLINE)["boarding_hours"]
    assert f"95% CI {fmt(lo)}" in re.sub(r"<[^>]+>", "", _row_html(text, label))
    assert "(of the median)" in _row_html(text, label)
    assert deck.headline_cells(r)[0] == f"{fmt(median)} median"
    plain = report.Tables(t.out_dir, t.manifest, summary=summary, scenarios=["baseline"])
    before = report.html_report(plain, [], report.warnings(plain))
    for kpi, other, _ in report.HEADLINE:
        if kpi != "boarding_hours":
            assert _row_html(text, other) == _row_html(before, other), kpi
    assert "median" not in re.search(r"<h2 id='headline'>.*?</table>", before, re.S).group(0)
