"""Delay reasons in two schemes (``reasons.py``): DTOC codes and today's NCTR categories. Every
delayed bed day is counted once in each; a wait's shares split its days exactly; a wait with no
DTOC code is counted as ``not_dtoc``; a wait with no NCTR category takes its DTOC code's; and the
default system's simple discharges are no longer "patient or family choice"."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from test_default_system import ROOT, default_config

from flowsim import national, runner
from flowsim.config import validate
from flowsim.reasons import FROM_DTOC, NCTR, NOT_DTOC


@pytest.fixture(scope="module")
def default_runs():
    cfg = default_config(replications=2, horizon_days=200, warmup_days=50, seed=23)
    out = runner.run([("baseline", cfg)], jobs=2)
    assert not out.errors
    return cfg, out.runs


def columns(runs, scheme: str) -> list[str]:
    if scheme == "nctr":
        return [c for c in runs.columns if c.startswith("delayed_bed_days_nctr_")]
    codes = [c for c in runs.columns if c.removeprefix("delayed_bed_days_") in FROM_DTOC]
    return codes + [c for c in runs.columns if c == f"delayed_bed_days_{NOT_DTOC}"]


@pytest.mark.parametrize("scheme", ["nctr", "dtoc"])
def test_each_scheme_counts_every_delayed_bed_day_once(default_runs, scheme):
    _, runs = default_runs
    parts = runs[columns(runs, scheme)]
    assert len(parts.columns) >= 5
    np.testing.assert_allclose(parts.sum(axis=1), runs["delayed_bed_days"], rtol=1e-9)


def test_a_simple_discharge_is_split_by_its_shares_and_is_not_patient_choice(default_runs):
    """The default's pathway 0 discharge process is the only wait with no DTOC code, and its NCTR
    shares (medicines, transport, the discharge summary) split exactly its days."""
    cfg, runs = default_runs
    p0 = cfg.system.discharge.pathways["P0"].process_wait
    assert p0.reason is None and "choice" not in p0.nctr
    no_code = [
        w for w in [*(s.wait for s in cfg.system.services.values() if s.wait),
                    *(p.process_wait for p in cfg.system.discharge.pathways.values())]
        if w.reason is None
    ]  # fmt: skip
    assert no_code == [p0]
    days = runs[f"delayed_bed_days_{NOT_DTOC}"]
    assert (days > 0).all()
    for code, share in p0.nctr.items():
        np.testing.assert_allclose(runs[f"delayed_bed_days_nctr_{code}"], share * days, rtol=1e-9)
    # the label that once carried 39% of delayed bed days now carries only care-home choice
    share_g = runs["delayed_bed_days_G"].sum() / runs["delayed_bed_days"].sum()
    assert share_g < 0.10, share_g


def test_a_wait_given_only_a_dtoc_code_takes_its_nctr_category():
    """The tandem system gives DTOC codes only: each NCTR column equals the DTOC columns that map
    to it (``reasons.FROM_DTOC``)."""
    system = yaml.safe_load((ROOT / "configs/system/tandem.yaml").read_text())
    run = {"replications": 1, "horizon_days": 150, "warmup_days": 30, "progress": False}
    cfg = validate({"system": system, "run": run})
    runs = runner.run([("baseline", cfg)], jobs=1).runs
    dtoc = [c.removeprefix("delayed_bed_days_") for c in columns(runs, "dtoc")]
    assert dtoc and NOT_DTOC not in dtoc
    for code in {FROM_DTOC[d] for d in dtoc}:
        want = sum(runs[f"delayed_bed_days_{d}"] for d in dtoc if FROM_DTOC[d] == code)
        np.testing.assert_allclose(runs[f"delayed_bed_days_nctr_{code}"], want, rtol=1e-12)
    assert set(c.removeprefix("delayed_bed_days_nctr_") for c in columns(runs, "nctr")) <= set(NCTR)


def test_the_system_says_which_scheme_its_reports_lead_with():
    assert national.schemes({"system": {"reason_scheme": "dtoc"}}) == ("dtoc", "nctr")
    assert national.schemes({"system": {"reason_scheme": "nctr"}}) == ("nctr", "dtoc")
    assert national.schemes({}) == ("nctr", "dtoc")  # the default
