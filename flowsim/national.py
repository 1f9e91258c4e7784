"""Today's national measures as a system lead reads them, from ``summary.csv`` alone: the
discharge ready date measures by pathway (``results.discharge_ready``; NHS England's monthly
discharge delays publication) and the delayed bed days by reason in each scheme (``reasons.py``:
today's NCTR categories and the DTOC codes of 2010-2020), each with its 95% interval.

The report, the workbook and the printout show these tables; the scheme a system leads with is
its ``reason_scheme``."""

from __future__ import annotations

import math

import pandas as pd

from flowsim.config import DRD_BANDS, DRD_SCOPES
from flowsim.reasons import DTOC, NCTR, NOT_DTOC, NOT_DTOC_NAME, SCHEMES

BAND_LABELS = {
    "0": "on their discharge ready date",
    "1": "1 day after it",
    "2_3": "2-3 days after",
    "4_6": "4-6 days after",
    "7_13": "7-13 days after",
    "14_20": "14-20 days after",
    "21_plus": "21 days or more after",
}
DRD_MEASURES = (
    ("drd_discharges", "Discharges (stays of a night or more)", ""),
    *((f"drd_days_{b}_share", f"Discharged {BAND_LABELS[b]}", "%") for b, _ in DRD_BANDS),
    ("drd_mean_days", "Mean days from ready to discharge, all discharges", "days"),
    ("drd_mean_days_delayed", "Mean days from ready to discharge, delayed discharges", "days"),
    ("nctr_census_mean", "People not meeting the criteria to reside, daily count", ""),
)
"""The discharge ready date measures in reading order: (KPI stem, label, unit)."""
SCOPES = tuple((scope, scope.lstrip("_") or "All pathways") for scope in DRD_SCOPES)
SCHEME_NAMES = {
    "nctr": "Today's national reasons (NCTR, acute discharge sitrep)",
    "dtoc": "DTOC reason codes (2010-2020)",
}


def _rows(summary: pd.DataFrame, scenario: str) -> pd.DataFrame:
    return summary[summary["scenario"] == scenario].set_index("kpi")


def discharge_ready(
    summary: pd.DataFrame, scenario: str, comparison: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """One row per (measure, pathway scope): ``measure``, ``unit``, ``pathway``, ``mean``,
    ``ci_low``, ``ci_high``, and, given a comparison that has the scenario, its paired change
    against the baseline (``diff_mean``, ``diff_ci_low``, ``diff_ci_high``); None where the run
    has no such measures."""
    rows = _rows(summary, scenario)
    if "drd_discharges" not in rows.index:
        return None
    change = _rows(comparison, scenario) if comparison is not None else None
    out = []
    for stem, label, unit in DRD_MEASURES:
        for suffix, scope in SCOPES:
            kpi = stem + suffix
            if kpi in rows.index:
                r = rows.loc[kpi]
                row = {"measure": label, "unit": unit, "pathway": scope, "kpi": kpi,
                       "mean": r["mean"], "ci_low": r["ci_low"],
                       "ci_high": r["ci_high"]}  # fmt: skip
                if change is not None and kpi in change.index:
                    d = change.loc[kpi]
                    row.update({k: d[k] for k in ("diff_mean", "diff_ci_low", "diff_ci_high")})
                out.append(row)
    return pd.DataFrame(out)


def schemes(config: dict) -> tuple[str, ...]:
    """The reason schemes in the order a system leads with (its ``reason_scheme`` first)."""
    lead = config.get("system", {}).get("reason_scheme", "nctr")
    return (lead,) + tuple(s for s in SCHEMES if s != lead)


def reasons(summary: pd.DataFrame, scenario: str, scheme: str) -> pd.DataFrame | None:
    """Delayed bed days in acute beds by reason in one scheme, largest first: ``code``,
    ``reason``, ``mean``, ``ci_low``, ``ci_high``, ``share`` (of all delayed bed days)."""
    rows = _rows(summary, scenario)
    if "delayed_bed_days" not in rows.index:
        return None
    if scheme == "nctr":
        names = {f"delayed_bed_days_nctr_{c}": (c, n) for c, n in NCTR.items()}
    else:
        names = {f"delayed_bed_days_{c}": (c, n) for c, n in DTOC.items()}
        names[f"delayed_bed_days_{NOT_DTOC}"] = (NOT_DTOC, NOT_DTOC_NAME)
    total = float(rows.loc["delayed_bed_days", "mean"])
    out = [
        {"code": code, "reason": name, "mean": rows.loc[kpi, "mean"],
         "ci_low": rows.loc[kpi, "ci_low"], "ci_high": rows.loc[kpi, "ci_high"],
         "share": rows.loc[kpi, "mean"] / total if total > 0 else math.nan}
        for kpi, (code, name) in names.items()
        if kpi in rows.index
    ]  # fmt: skip
    if not out:
        return None
    return pd.DataFrame(out).sort_values("mean", ascending=False, kind="stable")


ORG_MEASURES = (
    ("admissions", "Acute admissions", ""),
    ("discharges", "Discharges from acute beds", ""),
    ("acute_bed_days", "Acute bed days", ""),
    ("delayed_bed_days", "Delayed bed days in acute beds", ""),
    ("delayed_bed_days_nhs", "  of which the NHS is responsible for", ""),
    ("delayed_bed_days_social_care", "  of which social care is responsible for", ""),
    ("delayed_bed_days_both", "  of which both are responsible for", ""),
    ("nctr_mean", "Beds held by people ready to leave", ""),
    ("delayed_patients", "People delayed leaving hospital", ""),
    ("mean_delay_days", "  their mean delay", "days"),
    ("readmissions", "Emergency readmissions", ""),
    ("home_at_91_days_rate", "At home 91 days after reablement", "%"),
    ("care_home_admissions", "Care home admissions", ""),
    ("acute_occupancy_rate", "Its acute beds occupied", "%"),
    ("acute_days_over_95pct", "Days its acute beds were over 95% full", ""),
    ("boarding_hours", "Boarding: hours waited at its front door for a bed", ""),
    ("community_wait_days", "Days waited in the community for its services", ""),
    ("drd_days_0_share", "Discharged on their discharge ready date", "%"),
    ("drd_days_21_plus_share", "Discharged 21 days or more after it", "%"),
    ("drd_mean_days", "Mean days from ready to discharge, all discharges", "days"),
    ("drd_mean_days_delayed", "  the same, delayed discharges only", "days"),
    ("nctr_census_mean", "People not meeting the criteria to reside, daily count", ""),
    ("cost_gbp", "Cost: its services and the investments it funds", "GBP"),
)
"""Each organisation's page: (KPI after ``org_<name>_``, label, unit), with its delayed bed days
by reason in the scheme the system leads with after their split by responsible organisation
(``org_reasons``). A council's numbers are its
residents'; a trust's, everyone in its beds (``results.organisations``); a measure an
organisation does not have (a council's occupancy) is left out."""


def org_reasons(scheme: str) -> list[tuple[str, str, str]]:
    """An organisation page's rows of delayed bed days by reason in one scheme: (KPI after
    ``org_<name>_``, label, unit)."""
    if scheme == "nctr":
        return [(f"delayed_bed_days_nctr_{c}", f"  delayed: {n}", "") for c, n in NCTR.items()]
    dtoc = [(f"delayed_bed_days_{c}", f"  delayed: {c}, {n}", "") for c, n in DTOC.items()]
    return dtoc + [(f"delayed_bed_days_{NOT_DTOC}", f"  delayed: {NOT_DTOC_NAME}", "")]


def organisations(
    summary: pd.DataFrame, comparison: pd.DataFrame | None, config: dict
) -> pd.DataFrame | None:
    """Each organisation's numbers in every scenario, with 95% intervals, and each scenario's
    paired change against the baseline where a comparison was run: one row per (organisation,
    measure, scenario). None for a system of one organisation."""
    orgs = config.get("system", {}).get("organisations") or {}
    if not orgs:
        return None
    s = summary.set_index(["scenario", "kpi"])
    c = comparison.set_index(["scenario", "kpi"]) if comparison is not None else None
    rows = []
    after = [m[0] for m in ORG_MEASURES].index("delayed_bed_days_both") + 1  # the delay split
    measures = [*ORG_MEASURES[:after], *org_reasons(schemes(config)[0]), *ORG_MEASURES[after:]]
    for name, org in orgs.items():
        for stem, label, unit in measures:
            kpi = f"org_{name}_{stem}"
            for scenario in dict.fromkeys(summary["scenario"]):
                if (scenario, kpi) not in s.index:
                    continue
                r = s.loc[(scenario, kpi)]
                row = {"organisation": name, "kind": org.get("kind", ""),
                       "label": org.get("label") or name, "measure": label, "unit": unit,
                       "kpi": kpi, "scenario": scenario, "mean": r["mean"],
                       "ci_low": r["ci_low"], "ci_high": r["ci_high"]}  # fmt: skip
                if c is not None and (scenario, kpi) in c.index:
                    d = c.loc[(scenario, kpi)]
                    row.update({k: d[k] for k in ("diff_mean", "diff_ci_low", "diff_ci_high")})
                rows.append(row)
    return pd.DataFrame(rows) if rows else None
