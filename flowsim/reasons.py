"""Why people wait: the two national schemes a delay can be recorded under.

Each wait of a system (``config.Wait``: a wait to enter a service, or a pathway's discharge
process) carries a code in each scheme, and every delayed bed day is counted under both:

- **DTOC** (``reason``): the ten reason codes of NHS England's monthly delayed transfers of care
  statistics, August 2010 to February 2020 (DOMAIN.md section 2). DTOC counted only delays of
  people whose transfer was held up after they were ready for it; a simple discharge's own
  processes (medicines to take home, transport, the discharge letter) had no code. A wait with no
  DTOC code is counted as ``not_dtoc``.
- **NCTR** (``nctr_reason``): the reasons the acute discharge situation report has given since
  2020 for people who no longer meet the criteria to reside and remain in hospital (NHS England,
  Discharge Delays statistical work area, england.nhs.uk/statistics/statistical-work-areas/
  discharge-delays; the weekly "reasons for discharge delay" collection). [U] The sitrep's list is
  longer and has changed over time; ``NCTR`` groups it into the categories a system lead reads,
  under short codes of ours. A wait may split its days over several categories by shares (the
  days of a simple discharge's wait: medicines, transport, the discharge summary), which are then
  counted in those proportions; given no NCTR code, a wait takes the one its DTOC code maps to
  (``FROM_DTOC``).

``System.reason_scheme`` says which scheme the printout, report and workbook lead with; both are
always in the tables.
"""

from __future__ import annotations

DTOC = {
    "A": "completion of assessment",
    "B": "public funding",
    "C": "further non-acute NHS care",
    "Di": "residential home placement",
    "Dii": "nursing home placement",
    "E": "care package in own home",
    "F": "community equipment or adaptations",
    "G": "patient or family choice",
    "H": "disputes",
    "I": "housing",
}
"""DTOC reason codes and their meanings (NHS England monthly statistics); DOMAIN.md section 2."""

NOT_DTOC = "not_dtoc"
"""The DTOC column of waits with no DTOC code (a simple discharge's own processes)."""
NOT_DTOC_NAME = "no DTOC code: hospital discharge processes"

NCTR = {
    "discharge_summary": "a medical decision or the discharge summary",
    "therapy": "a therapy decision",
    "diagnostics": "a diagnostic test",
    "medicines": "medicines to take home",
    "transport": "transport",
    "referral": "referral to the community single point of access",
    "care_at_home": "care at home: reablement or a package (pathway 1)",
    "community_bed": "a rehabilitation or community bed (pathway 2)",
    "care_home": "a care home place (pathway 3)",
    "equipment": "community equipment or adaptations",
    "hospice": "a hospice bed",
    "choice": "patient or family choice",
    "safeguarding": "a safeguarding concern",
    "housing": "housing, or nowhere to be discharged to",
    "repatriation": "repatriation or transfer to another trust",
    "other": "other reasons",
}
"""NCTR reason categories (what a person ready to leave is waiting for) and their meanings."""

FROM_DTOC = {
    "A": "referral",
    "B": "other",
    "C": "community_bed",
    "Di": "care_home",
    "Dii": "care_home",
    "E": "care_at_home",
    "F": "equipment",
    "G": "choice",
    "H": "other",
    "I": "housing",
}
"""The NCTR category of a wait given only a DTOC code."""

SCHEMES = ("nctr", "dtoc")
"""``System.reason_scheme``: the scheme a system's reports lead with."""


def nctr_shares(reason: str | None, nctr_reason: str | dict[str, float] | None) -> dict:
    """The NCTR categories a wait's days are counted under, with their shares (summing to 1)."""
    if isinstance(nctr_reason, dict):
        return dict(nctr_reason)
    if isinstance(nctr_reason, str):
        return {nctr_reason: 1.0}
    return {FROM_DTOC[reason]: 1.0}
