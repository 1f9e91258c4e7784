"""The ``flowsim`` console script end to end: output files of the contract (DESIGN.md section 4),
determinism across worker counts, and bad input rejected with no traceback and nothing written
(DESIGN.md section 8). Runs are tiny; each distinct run happens once per module."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

import flowsim
from flowsim import files, printout, results, uncertainty
from flowsim.config import validate

TINY = ["run.replications=2", "run.horizon_days=60", "run.warmup_days=20"]
SEED = 4242
ACUTE_CAPACITY = 735  # an override the manifest must echo back
SUMMARY_COLUMNS = ["scenario", "kpi", "mean", "ci_low", "ci_high", "p5", "p50", "p95", "n"]
VERSION_KEYS = {"flowsim", "python", "simpy", "numpy", "numba"}


def _command() -> list[str]:
    exe = shutil.which("flowsim")
    if exe is None:  # installed next to this interpreter but not on PATH
        candidate = Path(sys.executable).with_name("flowsim")
        if candidate.exists():
            exe = str(candidate)
    if exe is None:
        pytest.fail("the flowsim console script is not installed (pip install -e .)")
    return [exe]


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, cwd: Path, out: Path) -> None:
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.cwd, self.out = cwd, out

    def __repr__(self) -> str:
        return f"rc={self.rc}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def _start(tmp_path_factory, name: str, overrides: list[str]):
    cwd = tmp_path_factory.mktemp(name)  # a working directory outside the repo
    out = cwd / "out"
    env = {k: v for k, v in os.environ.items() if k != "FLOWSIM_ROOT"}
    proc = subprocess.Popen([*_command(), *overrides, f"hydra.run.dir={out}"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, cwd, out


def _finish(started, timeout: float = 300) -> Run:
    proc, cwd, out = started
    stdout, stderr = proc.communicate(timeout=timeout)
    return Run(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), cwd, out)


def flowsim_run(tmp_path_factory, name: str, overrides: list[str]) -> Run:
    return _finish(_start(tmp_path_factory, name, overrides))


def _ok(run: Run) -> Run:
    assert run.rc == 0, run
    assert "Traceback" not in run.stderr, run
    return run


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Run:
    """Two workers (run.jobs=1000 asks for more than there are replications), with an acute
    capacity override."""
    return _ok(flowsim_run(tmp_path_factory, "default", [
        *TINY, f"run.seed={SEED}", f"system.services.acute.capacity={ACUTE_CAPACITY}",
        "run.jobs=1000", "run.figures=false"]))  # 1000 asked, 2 used: one per replication


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory) -> Run:
    """The same config and seed as ``default_run`` on one worker."""
    return _ok(flowsim_run(tmp_path_factory, "serial", [
        *TINY, f"run.seed={SEED}", f"system.services.acute.capacity={ACUTE_CAPACITY}",
        "run.jobs=1", "run.report=false"]))


@pytest.fixture(scope="module")
def other_seed_run(tmp_path_factory) -> Run:
    return _ok(flowsim_run(tmp_path_factory, "other_seed", [
        *TINY, f"run.seed={SEED + 1}", f"system.services.acute.capacity={ACUTE_CAPACITY}",
        "run.jobs=1", "run.report=false"]))


@pytest.fixture(scope="module")
def patient_log_run(tmp_path_factory) -> Run:
    return _ok(flowsim_run(tmp_path_factory, "patient_log",
                           [*TINY, f"run.seed={SEED}", "run.jobs=1", "run.patient_log=true",
                            "run.report=false"]))


# -- the default command ------------------------------------------------------------------------


def test_default_command_prints_summary(default_run):
    assert "95% CI" in default_run.stdout
    assert "Delayed bed days" in default_run.stdout


def test_workers_said_are_workers_used(default_run):
    assert "2 replications of 60 days (warm-up 20) on 2 workers" in default_run.stdout


def test_default_command_writes_contract_files(default_run):
    files = {p.name for p in default_run.out.iterdir()}
    assert {"runs.parquet", "daily.parquet", "summary.csv", "manifest.json"} <= files
    assert {"flows.parquet", "report.html", "summit_pack.xlsx", "summit_pack.pptx"} <= files
    assert "figures" not in files  # run.figures=false
    assert "patients.parquet" not in files  # only with run.patient_log=true
    assert "errors.json" not in files
    assert not [f for f in files if f.endswith(".tmp")]  # no half-written leftovers
    # nothing written into the working directory beside the chosen output folder
    assert sorted(p.name for p in default_run.cwd.iterdir()) == ["out"]


def test_summary_intervals_stop_at_zero():
    """A skewed KPI over few replications (boarding is zero in most) gives a Student-t interval
    below zero; KPIs cannot be negative, so the summary's interval stops at 0. An interval clear
    of zero is the plain t-interval."""
    runs = pd.DataFrame({
        "scenario": ["baseline"] * 4, "replication": range(4),
        "boarding_hours": [0.0, 0.0, 0.0, 400.0], "admissions": [100.0, 102.0, 98.0, 101.0],
    })  # fmt: skip
    s = uncertainty.summary(runs).set_index("kpi")
    mean, t_low, t_high = uncertainty.interval(runs["boarding_hours"].to_numpy())
    assert t_low < 0
    assert s.loc["boarding_hours", "ci_low"] == 0.0
    assert s.loc["boarding_hours", "ci_high"] == pytest.approx(t_high)
    assert s.loc["boarding_hours", "mean"] == pytest.approx(mean)
    _, a_low, a_high = uncertainty.interval(runs["admissions"].to_numpy())
    assert a_low > 0
    assert (s.loc["admissions", "ci_low"], s.loc["admissions", "ci_high"]) == (a_low, a_high)


def test_output_files_readable_as_any_file_the_user_writes(default_run):
    """Atomic writes go through private temporary files (0600); the files left behind have the
    permissions the user's umask gives, so colleagues can read outputs in a shared folder."""
    umask = os.umask(0)
    os.umask(umask)
    for p in default_run.out.iterdir():
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name


@pytest.fixture(scope="module")
def manifest(default_run) -> dict:
    return json.loads((default_run.out / "manifest.json").read_text())


def test_manifest(manifest):
    assert {"config", "config_hash", "seed", "versions"} <= set(manifest)
    config = manifest["config"]
    assert "hydra" not in config
    assert config["run"]["replications"] == 2
    assert config["run"]["horizon_days"] == 60
    assert config["run"]["warmup_days"] == 20
    assert config["system"]["services"]["acute"]["capacity"] == ACUTE_CAPACITY
    assert manifest["seed"] == SEED == config["run"]["seed"]
    assert manifest["config_hash"] == files.config_hash(config)
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["config_hash"])
    versions = manifest["versions"]
    assert VERSION_KEYS <= set(versions)
    assert all(isinstance(v, str) and v for v in versions.values())
    assert versions["flowsim"] == flowsim.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    validate(config)  # the manifest's config reproduces the run


def test_runs_parquet_has_contract_columns(default_run, manifest):
    runs = pd.read_parquet(default_run.out / "runs.parquet")
    reasons = results.reasons_used(validate(manifest["config"]))
    assert reasons, "the default system records waits under some DTOC reason"
    expected = {"scenario", "replication", *results.KPI_CONTRACT,
                *(f"delayed_bed_days_{r}" for r in reasons)}
    assert expected <= set(runs.columns), sorted(expected - set(runs.columns))
    # one row per replication, in order, for the one scenario
    assert len(runs) == 2
    assert runs["replication"].tolist() == [0, 1]
    assert set(runs["scenario"]) == {manifest["config"]["scenario"]["name"]}
    # a busy system admits people and keeps beds occupied, within the capacity
    assert (runs["admissions"] > 0).all()
    assert (runs["acute_occupancy_mean"] > 0).all()
    assert (runs["acute_occupancy_mean"] <= ACUTE_CAPACITY).all()
    # delays split by responsible organisation add back up to the total
    parts = runs[["delayed_bed_days_nhs", "delayed_bed_days_social_care",
                  "delayed_bed_days_both"]].sum(axis=1)
    pd.testing.assert_series_equal(parts, runs["delayed_bed_days"], check_names=False, rtol=1e-9)


def test_summary_csv(default_run):
    runs = pd.read_parquet(default_run.out / "runs.parquet")
    summary = pd.read_csv(default_run.out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    kpis = [c for c in runs.columns if c not in ("scenario", "replication")]
    assert set(summary["kpi"]) == set(kpis)
    row = summary.set_index("kpi").loc["admissions"]
    assert row["n"] == 2
    assert row["mean"] == pytest.approx(runs["admissions"].mean())
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]


@pytest.mark.parametrize("name", ["runs.parquet", "daily.parquet", "flows.parquet"])
def test_parquet_provenance(default_run, manifest, name):
    meta = pq.read_schema(default_run.out / name).metadata
    assert b"flowsim" in meta
    provenance = json.loads(meta[b"flowsim"])
    assert provenance["config_hash"] == manifest["config_hash"]
    assert provenance["seed"] == SEED


def test_daily_parquet_shape(default_run):
    daily = pd.read_parquet(default_run.out / "daily.parquet")
    assert {"scenario", "replication"} <= set(daily.columns)
    assert sorted(daily["replication"].unique()) == [0, 1]
    assert len(daily) > 0


def test_patient_log(patient_log_run):
    path = patient_log_run.out / "patients.parquet"
    assert path.is_file()
    log = pd.read_parquet(path)
    assert len(log) > 0
    assert sorted(log["replication"].unique()) == [0, 1]
    assert "patients.parquet" in patient_log_run.stdout
    assert b"flowsim" in pq.read_schema(path).metadata


# -- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["runs.parquet", "daily.parquet", "flows.parquet"])
def test_same_seed_same_tables_whatever_the_workers(default_run, serial_run, name):
    a = pd.read_parquet(default_run.out / name)
    b = pd.read_parquet(serial_run.out / name)
    assert_frame_equal(a, b, check_exact=True)


def test_different_seed_different_runs(serial_run, other_seed_run):
    a = pd.read_parquet(serial_run.out / "runs.parquet")
    b = pd.read_parquet(other_seed_run.out / "runs.parquet")
    assert list(a.columns) == list(b.columns)
    kpis = ["admissions", "discharges", "delayed_bed_days", "acute_occupancy_mean"]
    assert not a[kpis].equals(b[kpis])
    assert (a["admissions"] != b["admissions"]).any()


# -- a run owns its folder; a whole distribution from the command line -------------------------

GAMMA = "{dist: gamma, mean: 12, sd: 8}"
STAY_OVERRIDE = f"system.services.reablement.stay={GAMMA}"


def test_rerun_into_its_folder_replaces_every_file_it_owns(tmp_path_factory):
    """The same config run again into its folder: the old run's files (a comparison, figures)
    do not outlive it, a file of the user's stays; the stay given whole replaced the old one."""
    args = [*TINY, "run.jobs=1", "run.report=false", STAY_OVERRIDE]
    first = _ok(flowsim_run(tmp_path_factory, "rerun", args))
    (first.out / "comparison.csv").write_text("scenario,kpi\nold,stale\n")
    (first.out / "figures").mkdir()
    (first.out / "figures" / "old.png").write_bytes(b"old")
    (first.out / "notes.txt").write_text("mine\n")
    env = {k: v for k, v in os.environ.items() if k != "FLOWSIM_ROOT"}
    proc = subprocess.run([*_command(), *args, f"hydra.run.dir={first.out}"], cwd=first.cwd,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    again = _ok(Run(proc, first.cwd, first.out))
    files = {p.name for p in again.out.iterdir()}
    assert "comparison.csv" not in files and "figures" not in files
    assert {"runs.parquet", "summary.csv", "manifest.json", "notes.txt"} <= files
    stay = json.loads((again.out / "manifest.json").read_text())["config"]["system"]
    assert stay["services"]["reablement"]["stay"] == {"dist": "gamma", "mean": 12, "sd": 8}


# -- bad input: tests/test_inputs.py (a table of every kind of bad input) ------------------------


# -- a mean driven by a few replications ----------------------------------------------------------


def _few_largest(n: int, share: float, rng) -> np.ndarray:
    """n values: ``few(n)`` equal large ones holding ``share`` of the total, the rest near 100,
    shuffled."""
    k = uncertainty.few(n)
    rest = rng.uniform(90.0, 110.0, n - k)
    large = np.full(k, share / (1 - share) * rest.sum() / k)
    return rng.permutation(np.concatenate([rest, large]))


def _least_holding_half(x: np.ndarray) -> int:
    desc = sorted(x, reverse=True)
    return next(m for m in range(1, len(desc) + 1) if sum(desc[:m]) > sum(desc) / 2)


@pytest.mark.parametrize("n", [3, 5, 10, 14, 20, 40, 100])
def test_few_replications_holding_more_than_half_drive_the_mean(n):
    rng = np.random.default_rng(n)
    for share in (0.51, 0.65, 0.93):  # (none where fewer equal ones hold exactly half)
        x = _few_largest(n, share, rng)
        assert np.sort(x)[-uncertainty.few(n)] > 110  # the large ones are the largest
        m = uncertainty.driven_by_few(x)
        assert 1 <= m <= uncertainty.few(n)
        assert m == _least_holding_half(x)
        assert uncertainty.driven_by_few(x * 1e4) == m  # a share: free of units and scale
    for share in (0.49, 0.3):
        assert uncertainty.driven_by_few(_few_largest(n, share, rng)) == 0
    # one more than a few holding the same share is not a few
    k = uncertainty.few(n) + 1
    if k < n:
        rest = rng.uniform(90.0, 110.0, n - k)
        x = np.concatenate([rest, np.full(k, 0.9 / 0.1 * rest.sum() / k)])
        held = np.sort(x)[::-1][: uncertainty.few(n)].sum() / x.sum()
        assert (uncertainty.driven_by_few(x) > 0) == (held > uncertainty.FEW_SHARE)


def test_usual_kpis_and_degenerate_values_are_not_driven_by_few():
    rng = np.random.default_rng(11)
    for _ in range(200):  # replications a few per cent apart, as delayed bed days are
        assert uncertainty.driven_by_few(rng.normal(1900.0, 60.0, 20)) == 0
    assert uncertainty.driven_by_few([0.0, 400.0]) == 0  # two replications: median == mean
    assert uncertainty.driven_by_few([0.0, 0.0, 400.0]) == 1
    assert uncertainty.driven_by_few([0.0, 0.0, 400.0, np.nan]) == 1  # NaN is no replication
    assert uncertainty.driven_by_few(np.zeros(20)) == 0
    assert uncertainty.driven_by_few([-5.0, 0.0, 400.0]) == 0  # not a share of a total
    assert uncertainty.driven_by_few([0.0, 0.0, np.inf]) == 0


@pytest.mark.parametrize("n", range(1, 61))
def test_median_interval_coverage_is_binomial(n):
    """[x_(l), x_(n+1-l)] holds the median with probability P(l <= B <= n - l), B ~ Bin(n, 1/2):
    the returned coverage is that, at least 95% where the range allows it, and the tightest."""
    from scipy.stats import binom

    x = np.arange(n, dtype=float) * 3.0 + 7.0  # x_(l) = 3 (l - 1) + 7, so l can be read back
    median, lo, hi, cover = uncertainty.median_interval(rng_order(x))
    assert median == np.median(x)
    if n == 1:
        assert math.isnan(lo) and math.isnan(hi) and math.isnan(cover)
        return
    rank = int(round((lo - 7.0) / 3.0)) + 1
    assert hi == x[n - rank]  # symmetric ranks

    def coverage(r: int) -> float:
        return float(binom.cdf(n - r, n, 0.5) - binom.cdf(r - 1, n, 0.5))

    assert cover == pytest.approx(coverage(rank), abs=1e-12)
    if coverage(1) >= 0.95:
        assert cover >= 0.95
        assert rank + 1 > n // 2 or coverage(rank + 1) < 0.95  # no tighter interval has 95%
    else:  # too few replications: the range, with its real coverage
        assert (lo, hi) == (x[0], x[-1])
        assert n < 6


def rng_order(x: np.ndarray) -> np.ndarray:
    return np.random.default_rng(x.size).permutation(x)


def test_median_interval_covers_as_it_says_on_skewed_draws():
    """Drawn 4,000 times from a lognormal (median 1) mixed with overflows (as boarding hours
    are), the interval holds the true median as often as its stated coverage (4 standard
    errors)."""
    rng = np.random.default_rng(5)
    for n in (5, 20):
        draws = rng.lognormal(0.0, 1.0, (4000, n))
        overflow = rng.random((4000, n)) < 0.1
        draws = np.where(overflow & (draws > 1.0), draws * 1e4, draws)  # the median stays 1
        got = [uncertainty.median_interval(d) for d in draws]
        hit = np.mean([lo <= 1.0 <= hi for _, lo, hi, _ in got])
        cover = got[0][3]
        assert abs(hit - cover) < 4 * math.sqrt(cover * (1 - cover) / len(draws)), (n, hit, cover)


def test_printout_headlines_the_median_of_a_kpi_a_few_replications_drive(capsys):
    """Boarding hours that overflow in 3 of 20 replications: the printout shows the median with
    its interval and the sentence; other KPIs keep their mean and Student-t interval."""
    rng = np.random.default_rng(2)
    boarding = rng.lognormal(np.log(1424.0), 0.5, 20)
    boarding[[2, 9, 17]] = rng.uniform(200_000, 400_000, 3)
    runs = pd.DataFrame({
        "scenario": "baseline", "replication": range(20),
        "admissions": rng.normal(60_000, 300, 20), "delayed_bed_days": rng.normal(1900, 60, 20),
        "boarding_hours": boarding,
    })  # fmt: skip
    summary = uncertainty.summary(runs)
    printout.summary(summary, "title", runs)
    out = capsys.readouterr().out
    median, lo, hi, _ = uncertainty.median_interval(boarding)
    fmt = lambda x: printout.number(x, "boarding_hours")  # noqa: E731
    row = next(line for line in out.splitlines() if "Boarding hours (median)" in line)
    assert row.split()[3:] == [fmt(median), fmt(lo), "to", fmt(hi)]
    said = " ".join(out.split())  # the sentence, unwrapped
    assert f"Boarding hours: the mean ({fmt(boarding.mean())}) is driven by" in said
    assert "the median is shown" in said and "front door overflows" in said
    s = summary.set_index("kpi").loc["delayed_bed_days"]
    cells = [printout.number(s[k], "x") for k in ("mean", "ci_low", "ci_high")]
    assert re.search(r"Delayed bed days \(acute\) +{} +{} to {}\n".format(*cells), out)
    # without the runs, or when no KPI is skewed, today's printout exactly
    printout.summary(summary, "title")
    plain = capsys.readouterr().out
    assert "median" not in plain
    assert [line for line in plain.splitlines() if "Boarding hours" in line][0].split()[2] == (
        fmt(boarding.mean())
    )
    calm = runs.assign(boarding_hours=rng.normal(1424.0, 50.0, 20))
    printout.summary(uncertainty.summary(calm), "title")
    before = capsys.readouterr().out
    printout.summary(uncertainty.summary(calm), "title", calm)
    assert capsys.readouterr().out == before
