"""Calibration: bad targets files rejected with the file, column and line named; an optimiser
that recovers the parameters that generated synthetic "observed" data; a study that resumes;
a calibrated system config that ``flowsim system=...`` runs; Morris screening."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flowsim import calibrate, targets
from flowsim.config import ConfigError

sys.path.insert(0, str(Path(__file__).parent))
from console import script  # noqa: E402  (a helper module next to this file)

GOOD = """period_start,period,measure,value,unit
2025-10-06,week,admissions,805,patients
2025-10-13,week,admissions,"1,012",patients
2025-10-06,week,acute_occupancy,675.2,beds
2025-10-13,week,acute_occupancy,680.0,beds
"""


def _write(tmp_path: Path, text: str, name: str = "t.csv", bom: bool = False) -> Path:
    p = tmp_path / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return p


def test_good_targets_with_bom_and_thousands_separators(tmp_path):
    t = targets.read(_write(tmp_path, GOOD, bom=True))
    values = t.table.set_index(["measure", "period_start"])["value"]
    assert values.loc[("admissions", pd.Timestamp("2025-10-13").date())] == 1012
    assert len(t.table) == 4


BAD = [
    ("missing column", GOOD.replace(",unit", "", 1), "line 1, column unit"),
    (
        "unknown column",
        GOOD.replace("value,unit", "value,unit,extra", 1)
        .replace("patients\n", "patients,x\n")
        .replace("beds\n", "beds,x\n"),
        "column extra",
    ),
    (
        "unknown measure",
        GOOD.replace("acute_occupancy,675.2", "occupancy,675.2"),
        "line 4, column measure",
    ),
    ("wrong unit", GOOD.replace("675.2,beds", "675.2,patients"), "line 4, column unit"),
    ("negative count", GOOD.replace("805", "-805"), "line 2, column value"),
    ("not a number", GOOD.replace("805", "eight"), "line 2, column value"),
    (
        "bad date",
        GOOD.replace("2025-10-06,week,admissions", "06/10/2025,week,admissions"),
        "line 2, column period_start",
    ),
    (
        "duplicate",
        GOOD + "2025-10-13,week,admissions,900,patients\n",
        "line 6, column period_start",
    ),
    (
        "missing period",
        GOOD.replace("2025-10-13,week,acute_occupancy", "2025-10-20,week,acute_occupancy"),
        "line 5, column period_start",
    ),
    (
        "month not on the 1st",
        "period_start,period,measure,value,unit\n2025-10-06,month,admissions,3000,patients\n",
        "line 2, column period_start",
    ),
    (
        "mixed periods",
        GOOD + "2025-11-01,month,discharges_P1,700,patients\n",
        "line 6, column period",
    ),
    (
        "unknown period",
        GOOD.replace("2025-10-06,week,admissions", "2025-10-06,day,admissions"),
        "line 2, column period",
    ),
]


@pytest.mark.parametrize("case,text,where", BAD, ids=[b[0] for b in BAD])
def test_bad_targets_are_rejected_naming_file_column_and_line(tmp_path, case, text, where):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        targets.read(path)
    assert str(path) in str(err.value) and where in str(err.value), str(err.value)


@pytest.mark.parametrize("name", ["synthetic_default.csv", "example_monthly.csv"])
def test_shipped_targets_files_are_valid(name):
    t = targets.read(Path(calibrate.ROOT) / "calibration" / "targets" / name)
    assert len(t.table) > 0 and (t.table["value"] >= 0).all()


def test_targets_outside_the_simulated_window_are_rejected(tmp_path):
    t = targets.read(_write(tmp_path, GOOD))
    import datetime as dt

    with pytest.raises(ConfigError, match="outside the simulated measured window"):
        targets.place(t, dt.date(2025, 4, 1), warmup_days=200, horizon_days=400)


# -- recovery -------------------------------------------------------------------------------------

TRUTH = {"arrivals.emergency.rate_per_day": 92.0, "services.reablement.capacity": 290}
MEASURES = [
    "admissions",
    "acute_occupancy",
    "ready_to_leave",
    "delayed_days_E",
    "reablement_occupancy",
    "reablement_exits_home",
]


def _observed(folder: Path, name: str, weeks: int, **spec) -> None:
    """A calibration file ``<name>.yaml`` for both parameters over ``weeks`` measured weeks
    after a 150-day warm-up, and its synthetic observed data (made from TRUTH, seed 99, one
    replication: a noisy realisation, as real data is)."""
    spec = {
        "name": name,
        "targets": "observed.csv",
        "overrides": ["run.warmup_days=150", f"run.horizon_days={150 + 7 * weeks}"],
        "parameters": [
            {"path": "arrivals.emergency.rate_per_day", "low": 80, "high": 105},
            {"path": "services.reablement.capacity", "low": 250, "high": 350, "integer": True},
        ],
        "jobs": 2,
        "seed": 2026,
        **spec,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    cal = calibrate.load(folder / f"{name}.yaml")
    observed = calibrate.synthesise(cal, TRUTH, MEASURES, weeks=weeks, seed=99)
    observed.to_csv(folder / "observed.csv", index=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Synthetic observed data from TRUTH (seed 99, one replication: a noisy realisation, as
    real data is), then an optuna calibration of both parameters (seed 2026) through the CLI."""
    d = tmp_path_factory.mktemp("calibration")
    _observed(d, "recovery", weeks=12, method="optuna", trials=24, replications=2)
    out = d / "out"
    proc = subprocess.run(
        [script("flowsim-calibrate"), str(d / "recovery.yaml"), "--out", str(out), "--no-install"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d, out, proc


# Tolerance: the "observed" data are one noisy realisation (weekly admissions vary by ~3%), and
# 24 TPE trials over a 2-D box; within 5% of the truth is what this should reach, and far
# tighter than the box (80-105 a day; 250-350 places).
TOLERANCE = 0.05


def test_optimiser_recovers_the_parameters_that_made_the_data(study):
    _, out, _ = study
    trials = pd.read_csv(out / "trials.csv")
    best = trials.loc[trials["distance"].idxmin()]
    for path, truth in TRUTH.items():
        assert abs(best[path] - truth) <= TOLERANCE * truth, (path, best[path], truth)
    # and the fit beats the uncalibrated default system's
    assert best["distance"] < trials["distance"].median()


def test_fit_and_calibrated_system_are_written(study):
    d, out, proc = study
    fit = pd.read_csv(out / "fit.csv")
    observed = pd.read_csv(d / "observed.csv")
    assert len(fit) == len(observed)
    assert (fit["ci_low"] <= fit["simulated_mean"]).all()
    assert (fit["simulated_mean"] <= fit["ci_high"]).all()
    assert "plotly" in (out / "fit.html").read_text()[:20000].lower()
    system = yaml.safe_load((out / "system" / "recovery_calibrated.yaml").read_text())
    trials = pd.read_csv(out / "trials.csv")
    best = trials.loc[trials["distance"].idxmin()]
    assert system["arrivals"]["emergency"]["rate_per_day"] == pytest.approx(
        best["arrivals.emergency.rate_per_day"]
    )
    assert system["services"]["reablement"]["capacity"] == best["services.reablement.capacity"]
    assert "flowsim --config-dir" in proc.stdout


def test_calibrated_system_runs_with_flowsim(study, tmp_path):
    _, out, _ = study
    env = {k: v for k, v in os.environ.items() if k != "FLOWSIM_ROOT"}
    proc = subprocess.run(
        [
            script("flowsim"),
            "--config-dir",
            str(out),
            "system=recovery_calibrated",
            "run.replications=1",
            "run.horizon_days=60",
            "run.warmup_days=20",
            "run.report=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["system"]["name"] == "recovery_calibrated"


def test_study_resumes_and_runs_only_the_missing_trials(study):
    d, out, _ = study
    before = pd.read_csv(out / "trials.csv")
    cal = calibrate.load(d / "recovery.yaml")
    cal.trials = len(before) + 2
    objective = calibrate.Objective(cal, d)
    after = calibrate.optimise(objective, out)
    assert objective.evaluations == 2  # nothing recomputed
    assert len(after) == len(before) + 2
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before, check_dtype=False)


def test_bad_calibration_input_exits_cleanly(tmp_path):
    spec = {
        "name": "x",
        "targets": "t.csv",
        "parameters": [{"path": "arrivals.emergency.rate_per_day", "low": 100, "high": 90}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run(
        [script("flowsim-calibrate"), str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "parameters.0" in proc.stderr and "low must be below high" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    spec["parameters"][0].update(low=80, high=100)
    _write(tmp_path, GOOD.replace("805", "-805"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run(
        [script("flowsim-calibrate"), str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "t.csv, line 2, column value" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    (tmp_path / "c.yaml").write_text("name: x\nparameters: [\n")  # a YAML syntax error
    proc = subprocess.run(
        [script("flowsim-calibrate"), str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"c\.yaml, line 3, column 1: YAML syntax error", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_morris_screening_ranks_the_parameters(study, tmp_path):
    d, _, _ = study
    cal = calibrate.load(d / "recovery.yaml")
    cal.morris_trajectories = 3
    table, runs = calibrate.screen(calibrate.Objective(cal, d))
    assert set(table["parameter"]) == set(TRUTH)
    assert len(runs) == 3 * (len(TRUTH) + 1)  # Morris: r (k + 1) parameter sets
    assert (table["mu_star"] > 0).all()


def test_abc_posterior_covers_the_truth(tmp_path):
    """ABC-SMC (pyabc) on synthetic data made from TRUTH: each parameter's 90% posterior interval
    covers the value that made the data. Small for CI: 8 weeks, one replication per particle,
    20 particles, 3 generations (the intervals are wide; coverage is what is checked)."""
    _observed(
        tmp_path, "abc", weeks=8, method="abc", abc_population=20, abc_generations=3, replications=1
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            script("flowsim-calibrate"),
            str(tmp_path / "abc.yaml"),
            "--out",
            str(out),
            "--no-install",
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    posterior = pd.read_csv(out / "posterior.csv").set_index("parameter")
    for path, truth in TRUTH.items():
        assert posterior.loc[path, "q05"] <= truth <= posterior.loc[path, "q95"], posterior
    particles = pd.read_csv(out / "posterior_particles.csv")
    assert len(particles) == 20 and abs(particles["weight"].sum() - 1) < 1e-9
    assert (out / "system" / "abc_calibrated.yaml").exists()


def test_installed_calibrated_system_runs_by_name(study, tmp_path):
    """Without --no-install the calibrated system goes to calibration/system/, on flowsim's
    search path, so `flowsim system=<name>` runs it with no other flag."""
    _, out, _ = study
    installed = Path(calibrate.ROOT) / "calibration" / "system" / "pytest_recovery_calibrated.yaml"
    installed.parent.mkdir(exist_ok=True)
    shutil.copy(out / "system" / "recovery_calibrated.yaml", installed)
    try:
        env = {k: v for k, v in os.environ.items() if k != "FLOWSIM_ROOT"}
        proc = subprocess.run(
            [
                script("flowsim"),
                "system=pytest_recovery_calibrated",
                "run.replications=1",
                "run.horizon_days=60",
                "run.warmup_days=20",
                "run.report=false",
                f"hydra.run.dir={tmp_path / 'run'}",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )
    finally:
        installed.unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_distances_are_zero_at_the_data_and_grow_away_from_it():
    import datetime as dt

    day = [dt.date(2025, 10, 6), dt.date(2025, 10, 13)]
    placed = pd.DataFrame(
        {"measure": ["admissions"] * 2, "period_start": day, "value": [100.0, 200.0]}
    )

    def sim(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "scenario": "baseline",
                "replication": [0, 1, 0, 1],
                "measure": "admissions",
                "period_start": [day[0], day[0], day[1], day[1]],
                "value": [98 + shift, 102 + shift, 198 + shift, 202 + shift],
            }
        )

    for kind in targets.DISTANCES:
        assert targets.distance(sim(0), placed, kind) == 0
        assert 0 < targets.distance(sim(5), placed, kind) < targets.distance(sim(10), placed, kind)
    # relative RMSE: a 10-patient miss on a mean of 150
    assert targets.distance(sim(10), placed) == pytest.approx(10 / 150)
    # standardised: 10 over the replications' sd (2.83)
    assert targets.distance(sim(10), placed, "standardised") == pytest.approx(10 / 8**0.5)


def test_daily_exits_by_destination_agree_with_the_flows():
    """The daily columns behind ``<service>_exits_<where>`` and ``discharges_P*`` count the same
    people as flows.parquet over the measured window."""
    from flowsim import runner
    from flowsim.config import validate

    cal = calibrate.load(Path(calibrate.ROOT) / "calibration" / "default.yaml")
    resolved = calibrate.base_config(cal)
    resolved["run"].update({"replications": 1, "warmup_days": 30, "horizon_days": 120})
    out = runner.run([("baseline", validate(resolved))])
    d = out.daily[(out.daily["day"] >= 30) & (out.daily["day"] < 120)]
    flows = out.flows.set_index(["source", "target"])["patients"]
    reab = d[d["service"] == "reablement"]
    for where in ("home", "home_care", "care_home", "death", "readmission"):
        assert reab[f"exits_{where}"].sum() == flows.get(("reablement", where), 0), where
    acute = d[d["service"] == "acute"]
    for p in ("P0", "P1", "P2", "P3"):
        assert acute[f"discharges_{p}"].sum() == flows.get(("acute", p), 0), p
