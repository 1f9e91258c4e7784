"""The summit pack's slide deck (``summit_pack.pptx``, python-pptx): a title slide, the headline
numbers with their intervals, and one slide per key figure with a one-line plain-English reading."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from flowsim.styling import Figure
from flowsim.wording import change_text, fmt, interval_text, median_text

if TYPE_CHECKING:
    from flowsim.outputs import Tables

KEY_FIGURES = (
    "flow",
    "causes_by_nctr_reason",
    "causes_by_reason",
    "causes_by_organisation",
    "causes_by_wait",
    "service_acute",
    "forest",
    "whose_beds",
    "cost_effectiveness",
    "capacity_curve",
    "allocation_frontier",
    "bottlenecks",
)
"""The figures that get a slide of their own (every figure is in report.html and figures/)."""


def headline_cells(r: pd.Series) -> tuple[str, ...]:
    """(value, interval, change) texts of one headline row, as the deck shows them; for a KPI
    whose mean a few replications drive, (median, its interval, the mean with its CI, change)."""
    unit = r["unit"]
    value = fmt(r["mean"], unit)
    ci = f"95% CI {interval_text(r['ci_low'], r['ci_high'], unit)}"
    if not pd.isna(r.get("median", float("nan"))):
        value, ci = (
            f"{fmt(r['median'], unit)} median",
            f"{median_text(r, unit)}\nmean {value} ({ci})",
        )
    change = ""
    if "diff_mean" in r and not pd.isna(r["diff_mean"]):
        change = (
            f"change {change_text(r['diff_mean'], unit)} "
            f"({change_text(r['diff_ci_low'], unit)} to {change_text(r['diff_ci_high'], unit)})"
        )
    return value, ci, change


def write(
    path: Path,
    t: Tables,
    head: pd.DataFrame,
    figs: list[Figure],
    pngs: dict[str, Path],
    warns: list[str],
) -> None:
    from PIL import Image
    from pptx import Presentation
    from pptx.enum.text import PP_ALIGN
    from pptx.util import Inches, Pt

    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    blank = prs.slide_layouts[6]
    system = t.config.get("system", {}).get("name", "?")
    m = t.manifest

    def lines_into(frame, lines: list[str], size: int, bold: bool = False, centre=False) -> None:
        frame.word_wrap = True
        for k, line in enumerate(lines):
            p = frame.paragraphs[0] if k == 0 else frame.add_paragraph()
            p.text = line
            p.font.size, p.font.bold = Pt(size), bold
            if centre:
                p.alignment = PP_ALIGN.CENTER

    def new_slide(title: str, size: int = 26):
        slide = prs.slides.add_slide(blank)
        box = slide.shapes.add_textbox(Inches(0.5), Inches(0.25), Inches(12.3), Inches(1.0))
        box.name = "Title"
        lines_into(box.text_frame, [title], size, bold=True)
        return slide

    def text_slide(title: str, lines: list[str]) -> None:
        slide = new_slide(title)
        box = slide.shapes.add_textbox(Inches(0.6), Inches(1.5), Inches(12), Inches(5.5))
        lines_into(box.text_frame, lines, 18)

    s = prs.slides.add_slide(blank)
    box = s.shapes.add_textbox(Inches(0.8), Inches(2.0), Inches(11.7), Inches(1.5))
    box.name = "Title"
    lines_into(
        box.text_frame,
        [f"Patient flow and delayed discharges: {system} system"],
        36,
        bold=True,
        centre=True,
    )
    box = s.shapes.add_textbox(Inches(0.8), Inches(3.8), Inches(11.7), Inches(2.5))
    lines_into(
        box.text_frame,
        [
            " vs ".join(t.scenarios) or "appraisal",
            f"{t.replications} replication(s), seed {m.get('seed')}, {t.measured_days:g} days "
            f"after a {t.window['warmup_days']:g}-day warm-up",
            f"flowsim {m.get('versions', {}).get('flowsim', '')}, config "
            f"{str(m.get('config_hash', ''))[:12]}, {dt.date.today().isoformat()}",
        ],
        18,
        centre=True,
    )

    if not head.empty:
        what = "mean, or median where marked" if "median" in head else "mean"
        slide = new_slide(f"The headline numbers ({what}; 95% confidence interval)")
        scen = list(dict.fromkeys(head["scenario"]))
        labels = list(dict.fromkeys(head["label"]))
        shape = slide.shapes.add_table(
            len(labels) + 1, len(scen) + 1, Inches(0.4), Inches(1.4), Inches(12.5), Inches(5.6)
        )
        table = shape.table
        table.cell(0, 0).text = ""
        for j, sc in enumerate(scen, start=1):
            table.cell(0, j).text = sc
        for i, label in enumerate(labels, start=1):
            table.cell(i, 0).text = label
            for j, sc in enumerate(scen, start=1):
                r = head[(head["label"] == label) & (head["scenario"] == sc)]
                if r.empty:
                    continue
                table.cell(i, j).text = "\n".join(x for x in headline_cells(r.iloc[0]) if x)
        for row in table.rows:
            for cell in row.cells:
                for p in cell.text_frame.paragraphs:
                    p.font.size = Pt(12 if len(scen) > 2 else 14)
    if warns:
        text_slide("Read with care: the evidence is thin", warns)

    for f in (f for f in figs if f.key in KEY_FIGURES):
        slide = new_slide(f.title, size=24 if len(f.title) < 80 else 20)
        if f.key in pngs:
            with Image.open(pngs[f.key]) as im:
                aspect = im.width / im.height
            height = min(5.1, 12.3 / aspect)
            width = height * aspect
            pic = slide.shapes.add_picture(
                str(pngs[f.key]), Inches((13.333 - width) / 2), Inches(1.4), Inches(width)
            )
            # alternative text for screen readers (python-pptx has no public setter for it)
            pic._element.nvPicPr.cNvPr.set("descr", f"{f.title}. {f.reading}")
        else:
            box = slide.shapes.add_textbox(Inches(1), Inches(3), Inches(11), Inches(1)).text_frame
            box.text = (
                "Figure image not exported (images need Chrome or Chromium): see report.html."
            )
        box = slide.shapes.add_textbox(Inches(0.6), Inches(6.6), Inches(12.1), Inches(0.7))
        lines_into(box.text_frame, [f.reading], 16)
        slide.notes_slide.notes_text_frame.text = f"figure: {f.key}"

    text_slide(
        "Where these numbers come from",
        [
            f"System: {system}; scenarios: {', '.join(t.scenarios) or 'appraisal'}.",
            f"{t.replications} replication(s), seed {m.get('seed')}; warm-up "
            f"{t.window['warmup_days']:g} days; {t.measured_days:g} days measured.",
            f"Config hash {m.get('config_hash', '')}; the full resolved config is in "
            "manifest.json.",
            "Intervals are 95% confidence intervals across replications; changes are paired "
            "(the same random numbers in every scenario).",
            "Every parameter with its source: report.html and the workbook's Parameters sheet.",
        ],
    )
    prs.save(str(path))
