"""Bad input, as a new user and a hostile tester would give it (DESIGN.md section 8; issue 11):
every case is rejected before any work with exit code 2, a plain message naming the field and
the rule, no traceback, and no file written (not in the output folder, not in the working
directory). One table; each case is the ``flowsim`` console script run as a user runs it. Then
the limits behind the size cases (work and memory estimated before a run) and progress logs."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowsim import runner
from flowsim.config import Config, ConfigError, validate
from flowsim.patients import arrival_times
from flowsim.streams import Streams

sys.path.insert(0, str(Path(__file__).parent))
from console import script  # noqa: E402  (a helper module next to this file)

STAY = "system.services.reablement.stay"
G = "age_65_84"  # a group of the default system

# id: (arguments, field named in the message, the rule (a regex of the message))
CASES: dict[str, tuple[list[str], str, str]] = {
    # run settings
    "replications_zero": (["run.replications=0"], "run.replications", r"greater than 0"),
    "replications_negative": (["run.replications=-1"], "run.replications", r"greater than 0"),
    "replications_fraction": (["run.replications=2.5"], "run.replications", r"integer"),
    "replications_text": (["run.replications=abc"], "run.replications", r"integer"),
    "horizon_zero": (["run.horizon_days=0"], "run.horizon_days", r"greater than 0"),
    "horizon_nan": (["run.horizon_days=nan"], "run.horizon_days", r"finite"),
    "horizon_inf": (["run.horizon_days=inf"], "run.horizon_days", r"finite"),
    "warmup_negative": (["run.warmup_days=-1"], "run.warmup_days", r"greater than or equal"),
    "warmup_too_long": (["run.warmup_days=600"], "run.warmup_days", r"shorter than horizon"),
    "jobs_zero": (["run.jobs=0"], "run.jobs", r"greater than or equal to 1"),
    "seed_negative": (["run.seed=-1"], "run.seed", r"greater than or equal to 0"),
    "engine_unknown": (["run.engine=fortran"], "run.engine", r"'simpy' or 'compiled'"),
    "patient_log_not_bool": (["run.patient_log=maybe"], "run.patient_log", r"boolean"),
    # work and memory estimated before the run
    "horizon_huge": (["run.horizon_days=10000000"], "run.horizon_days", r"more than this machine"),
    "rate_huge": (["system.arrivals.emergency.rate_per_day=10000000"],
                  "system.arrivals.emergency.rate_per_day", r"patients"),
    "replications_many": (["run.replications=1000"], "run.allow_large", r"50,000,000 patients"),
    # capacity
    "capacity_negative": (["system.services.acute.capacity=-5"],
                          "system.services.acute.capacity", r"greater than 0"),
    "capacity_zero": (["system.services.acute.capacity=0"],
                      "system.services.acute.capacity", r"greater than 0"),
    "capacity_nan": (["system.services.acute.capacity=nan"],
                     "system.services.acute.capacity", r"finite"),
    "capacity_huge": (["system.services.reablement.capacity=1e20"],
                      "system.services.reablement.capacity", r"1,000,000"),
    "capacity_fraction": (["system.services.reablement.capacity=2.5"],
                          "system.services.reablement.capacity", r"whole number"),
    "capacity_text": (["system.services.reablement.capacity=lots"],
                      "system.services.reablement.capacity", r"'unlimited'"),
    "capacity_unlimited_costed": (["system.services.reablement.capacity=unlimited"],
                                  "system.services.reablement.cost_per_capacity_day_gbp",
                                  r"no capacity to pay for"),
    "schedule_late_start": (["system.services.reablement.capacity=[{from_day: 5, capacity: 10}]"],
                            "system.services.reablement", r"start at from_day 0"),
    "schedule_not_increasing": (
        ["system.services.reablement.capacity=[{from_day: 0, capacity: 10}, "
         "{from_day: 50, capacity: 12}, {from_day: 20, capacity: 9}]"],
        "system.services.reablement", r"must increase"),
    "schedule_step_huge": (
        ["system.services.reablement.capacity=[{from_day: 0, capacity: 5e9}]"],
        "system.services.reablement.capacity.0.capacity", r"less than or equal to 1000000"),
    "start_occupancy_over_capacity": (["system.services.care_home.start_occupancy=999999"],
                                      "system.services.care_home.start_occupancy", r"above"),
    "start_queue_over_acute": (["+system.services.reablement.start_queue=1000"],
                               "system.services.reablement.start_queue", r"exceed the day-0"),
    "start_queue_in_acute": (["+system.services.acute.start_queue=3"],
                             "system.services.acute.start_queue", r"services patients wait"),
    # durations
    "dist_unknown": ([f"{STAY}={{dist: cauchy, mean: 3}}"], f"{STAY}.dist", r"'exponential'"),
    "gamma_without_sd": ([f"{STAY}={{dist: gamma, mean: 12}}"], STAY, r"takes mean\+sd"),
    "lognormal_median_over_mean": ([f"{STAY}={{dist: lognormal, median: 20, mean: 12}}"], STAY,
                                   r"mean > median"),
    "lognormal_mu_huge": ([f"{STAY}={{dist: lognormal, mu: 50, sigma: 1}}"], STAY,
                          r"over 36,500 days"),
    "lognormal_sigma_negative": ([f"{STAY}={{dist: lognormal, mu: 1, sigma: -1}}"],
                                 f"{STAY}.sigma", r"greater than 0"),
    "gamma_sd_negative": ([f"{STAY}={{dist: gamma, mean: 12, sd: -1}}"], f"{STAY}.sd",
                          r"greater than 0"),
    "stay_mean_zero": ([f"{STAY}.mean=0"], f"{STAY}.mean", r"greater than 0"),
    "stay_mean_centuries": ([f"{STAY}={{dist: exponential, mean: 1e9}}"], f"{STAY}.mean",
                            r"less than or equal to 36500"),
    "zero_probability_one": ([f"+{STAY}.zero_probability=1"], f"{STAY}.zero_probability",
                             r"less than 1"),
    "empirical_empty": ([f"{STAY}={{dist: empirical, values: []}}"], STAY, r"must not be empty"),
    "empirical_csv_missing": ([f"{STAY}={{dist: empirical, csv: no_such_file.csv}}"], STAY,
                              r"file not found: no_such_file.csv"),
    # probabilities and routing
    "next_not_summing": (["system.services.reablement.next.home=0.5"],
                         "system.services.reablement.next", r"sum to 1"),
    "next_negative": (["system.services.reablement.next.home=-0.1"],
                      "system.services.reablement.next.home", r"greater than or equal to 0"),
    "next_unknown_target": (["+system.services.reablement.next.mars=0"],
                            "system.services.reablement.next", r"unknown target 'mars'"),
    "next_to_itself": (["+system.services.reablement.next.reablement=0"],
                       "system.services.reablement.next", r"cannot route to itself"),
    "pathway_shares_not_summing": ([f"system.discharge.pathway_shares_by_group.{G}.P0=0.99"],
                                   f"system.discharge.pathway_shares_by_group.{G}", r"sum to 1"),
    "group_shares_not_summing": ([f"system.arrivals.emergency.group_shares.{G}=0.9"],
                                 "system.arrivals.emergency.group_shares", r"sum to 1"),
    "group_unknown": (["+system.arrivals.emergency.group_shares.martians=0"],
                      "system.arrivals.emergency.group_shares", r"unknown group 'martians'"),
    "arrival_target_unknown": (["system.arrivals.emergency.to=mars"],
                               "system.arrivals.emergency.to", r"unknown target 'mars'"),
    "arrival_rate_negative": (["system.arrivals.emergency.rate_per_day=-3"],
                              "system.arrivals.emergency.rate_per_day", r"greater than 0"),
    "day_of_week_short": (["system.arrivals.emergency.day_of_week=[1,1]"],
                          "system.arrivals.emergency.day_of_week", r"at least 7"),
    "day_of_week_zero": (["system.arrivals.emergency.day_of_week=[0,0,0,0,0,0,0]"],
                         "system.arrivals.emergency", r"all zero"),
    "death_probability_over_one": ([f"system.discharge.death_in_hospital_probability_by_group."
                                    f"{G}=1.5"],
                                   "system.discharge.death_in_hospital_probability_by_group",
                                   r"less than or equal to 1"),
    "deconditioning_certain": (["system.deconditioning.probability_per_day=1"],
                               "system.deconditioning.probability_per_day", r"less than 1"),
    "readmission_delay_too_long": (["system.discharge.readmission_delay.max=45"],
                                   "system.discharge.readmission_delay.max", r"at most 30"),
    "rates_csv_missing": (["system.arrivals.emergency.rate_per_day=null",
                           "+system.arrivals.emergency.rates_csv=no_rates.csv"],
                          "system.arrivals.emergency.rates_csv", r"file not found"),
    # delay reasons and the national measures
    "reason_unknown": (["system.services.reablement.wait.reason=Z"],
                       "system.services.reablement.wait.reason", r"'A', 'B'"),
    "nctr_reason_unknown": (["+system.services.reablement.wait.nctr_reason=weather"],
                            "system.services.reablement.wait.nctr_reason",
                            r"unknown NCTR category 'weather' \(known: .*medicines"),
    "nctr_shares_not_summing": (
        ["system.discharge.pathways.P0.process_wait.nctr_reason.medicines=0.5"],
        "system.discharge.pathways.P0.process_wait", r"shares must sum to 1"),
    "wait_without_reason": (["~system.services.reablement.wait.reason"],
                            "system.services.reablement.wait", r"give the wait's reason"),
    "reason_scheme_unknown": (["system.reason_scheme=icd10"], "system.reason_scheme",
                              r"'nctr' or 'dtoc'"),
    "census_time_bad": (["system.nctr_census_time=25:00"], "system.nctr_census_time",
                        r"pattern"),
    # keys, config groups, overrides (Hydra's errors, in plain lines)
    "unknown_key_added": (["+system.unknown_key=1"], "unknown_key", r"[Ee]xtra inputs"),
    "unknown_key": (["nosuch.key=1"], "nosuch.key", r"Could not override"),
    "system_unknown": (["system=nosuch"], "system/nosuch", r"Could not find"),
    "scenario_unknown": (["scenario=nosuch"], "scenario/nosuch", r"Could not find"),
    "compare_unknown": (["compare=[nosuch]"], "compare", r"no scenario 'nosuch'"),
    "override_syntax": (["run.seed=["], "run.seed", r"cannot read this override"),
    "interpolation_missing": (["run.seed=${oc.env:FLOWSIM_NO_SUCH_VARIABLE}"], "run.seed",
                              r"FLOWSIM_NO_SUCH_VARIABLE"),
    "yaml_syntax": (["--config-dir={files}", "system=broken"], "broken.yaml",
                    r"line 3, column 4: YAML syntax error"),
    "yaml_unknown_field": (["--config-dir={files}", "system=typo"], "system.servics",
                           r"[Ee]xtra inputs"),
    # scenarios
    "investment_unknown_lever": (["scenario.investments=[{lever: services.mars.capacity, add: 5}]"],
                                 "scenario.investments.0.lever", r"mars"),
    "investment_two_changes": (
        ["scenario.investments=[{lever: services.reablement.capacity, add: 5, multiply: 2}]"],
        "scenario.investments.0", r"exactly one of add, budget_gbp or multiply"),
    # appraisals
    "sweep_service_unknown": (["appraise.capacity_sweep.service=mars",
                               "appraise.capacity_sweep.capacities=[1]"],
                              "appraise.capacity_sweep.service", r"unknown service 'mars'"),
    "sweep_without_capacities": (["appraise.capacity_sweep.service=reablement"],
                                 "appraise.capacity_sweep.capacities", r"list the capacities"),
    "sweep_below_start_occupancy": (["appraise.capacity_sweep.service=care_home",
                                     "appraise.capacity_sweep.capacities=[100,3500]"],
                                    "appraise.capacity_sweep.capacities",
                                    r"100 places cannot hold"),
    "bottleneck_negative": (["appraise.bottleneck_units=-1"], "appraise.bottleneck_units",
                            r"greater than or equal to 0"),
    "allocate_lever_unknown": (["appraise.allocate.budget_gbp=1000",
                                "appraise.allocate.levers=[{service: mars, "
                                "unit_cost_gbp_per_year: 10, max_units: 2}]"],
                               "appraise.allocate.levers.0.service", r"unknown service"),
    # the output folder
    "folder_of_another_run": (["hydra.run.dir={other_run}"], "hydra.run.dir",
                              r"holds a run of another config"),
    "folder_of_something_else": (["hydra.run.dir={user_folder}"], "hydra.run.dir",
                                 r"holds files of something else"),
}  # fmt: skip

BROKEN_YAML = "name: broken\ngroups: [a\nfoo: 1\n"  # the list is never closed: line 3, column 4


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Config files a user could have written: a YAML syntax error, a misspelt field."""
    root = tmp_path_factory.mktemp("configs")
    (root / "system").mkdir()
    (root / "system" / "broken.yaml").write_text(BROKEN_YAML)
    default = (Path(__file__).resolve().parents[1] / "configs" / "system" / "default.yaml")
    text = default.read_text().replace("\nservices:", "\nservics:", 1)
    assert "\nservics:" in text
    (root / "system" / "typo.yaml").write_text(text)
    return root


def _folders(tmp_path_factory) -> dict[str, Path]:
    """Output folders already in use: one holding another run's files, one a user's own file."""
    root = tmp_path_factory.mktemp("folders")
    other = root / "other_run"
    other.mkdir()
    manifest = {"config": {"run": {"seed": 1}, "system": {"name": "another"}}, "config_hash": "x"}
    (other / "manifest.json").write_text(json.dumps(manifest))
    (other / "comparison.csv").write_text("scenario,kpi\n")
    user = root / "user_folder"
    user.mkdir()
    (user / "notes.txt").write_text("mine\n")
    return {"other_run": other, "user_folder": user}


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def rejected(tmp_path_factory, files):
    """Every case run once, a few at a time (each only composes and validates)."""
    folders = _folders(tmp_path_factory)
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWSIM_ROOT", "HYDRA_FULL_ERROR")}

    def one(case: str):
        args, _, _ = CASES[case]
        cwd = tmp_path_factory.mktemp(f"bad_{case}")
        places = {"{files}": str(files), **{f"{{{k}}}": str(v) for k, v in folders.items()}}
        for placeholder, path in places.items():
            args = [a.replace(placeholder, path) for a in args]
        out = None
        if not any(a.startswith("hydra.run.dir=") for a in args):
            out = cwd / "out"
            args.append(f"hydra.run.dir={out}")
        before = {k: _snapshot(f) for k, f in folders.items()}
        proc = subprocess.run([script("flowsim"), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip  (a huge run would not end)
        return proc, cwd, out, before

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(CASES, pool.map(one, CASES)))
    return done, folders


def test_the_table_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_rejected_before_any_work(rejected, case):
    done, folders = rejected
    proc, cwd, out, before = done[case]
    _, field, rule = CASES[case]
    shown = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 2, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert proc.stderr.startswith("flowsim: invalid input"), shown
    assert field in proc.stderr, shown
    assert re.search(rule, proc.stderr), shown
    assert "95% CI" not in proc.stdout  # nothing ran
    # nothing written: no output folder, nothing in the working directory, used folders untouched
    assert out is None or not out.exists(), list(out.rglob("*"))
    assert list(cwd.iterdir()) == []
    for name, folder in folders.items():
        assert _snapshot(folder) == before[name], name


# -- the limits: work and memory estimated before a run ---------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _default(**run) -> Config:
    system = yaml.safe_load((ROOT / "configs" / "system" / "default.yaml").read_text())
    return validate({"system": system, "run": {"progress": False, **run}})


def test_expected_arrivals_match_the_arrivals_drawn():
    """The estimate behind the limits is the mean of what a run draws: over 364 days (whole
    weeks, so the day-of-week factors average exactly) three replications' arrivals are within 2%
    of it (Poisson noise is 0.2% here; months of unequal length move the mean by under 1%)."""
    cfg = _default(horizon_days=364.0, warmup_days=0.0)
    expected = runner.expected_arrivals(cfg)
    in_care = sum(s.start_occupancy + s.start_queue for s in cfg.system.services.values())
    drawn = [sum(len(t) for t in arrival_times(cfg.system, Streams(cfg.run.seed, r), 364.0))
             for r in range(3)]  # fmt: skip
    assert abs(np.mean(drawn) + in_care - expected) < 0.02 * expected


def test_a_large_run_needs_allow_large_and_nothing_runs_past_the_machine(monkeypatch):
    cfg = _default(replications=1000)
    arms = [("baseline", cfg)]
    with pytest.raises(ConfigError, match=r"run.allow_large"):
        runner.check_size(arms, jobs=2, allow_large=False)
    size = runner.check_size(arms, jobs=2, allow_large=True)
    assert size.arrivals > runner.MAX_ARRIVALS and size.workers == 2
    # the default run fits on this machine; on one of 1 GB it needs more (three Python
    # processes), and no setting lets it start
    runner.check_size([("baseline", _default())], jobs=2, allow_large=False)
    monkeypatch.setattr(runner, "machine_memory_bytes", lambda: 1e9)
    with pytest.raises(ConfigError, match=r"more than this machine has"):
        runner.check_size([("baseline", _default())], jobs=2, allow_large=True)


def test_memory_estimate_grows_with_what_is_kept():
    """Memory grows with the horizon (daily rows), the replications (tables kept in the parent)
    and the patient log; the workers used are never more than the replications."""
    base = runner.estimate([("b", _default())], jobs=2)
    longer = runner.estimate([("b", _default(horizon_days=5450.0))], jobs=2)
    more = runner.estimate([("b", _default(replications=200))], jobs=2)
    logged = runner.estimate([("b", _default(patient_log=True))], jobs=2)
    assert longer.memory_bytes > base.memory_bytes
    assert more.memory_bytes > base.memory_bytes
    assert logged.memory_bytes > base.memory_bytes
    assert runner.estimate([("b", _default(replications=3))], jobs=1000).workers == 3


def test_long_runs_log_their_progress_when_output_is_not_a_terminal(monkeypatch, caplog):
    """With output to a file, progress is log lines: at tenths of the work, at most every
    ``every_s`` seconds (here each replication takes 4 s of a fake clock)."""
    clock = iter(range(0, 10_000, 4))
    monkeypatch.setattr(runner.time, "perf_counter", lambda: float(next(clock)))
    with caplog.at_level(logging.INFO, logger=runner.log.name):
        out = list(runner._logged(iter(range(20)), 20, every_s=10.0, quiet_s=60.0))
    assert out == list(range(20))  # everything passes through, in order
    lines = [r.getMessage() for r in caplog.records if "replications:" in r.getMessage()]
    done = [int(re.search(r"(\d+) of 20", line).group(1)) for line in lines]
    assert done[-1] == 20 and done == sorted(done)
    assert 3 <= len(done) <= 10  # not every replication, not silent
    assert all(k % 2 == 0 for k in done)  # at tenths of 20: every second replication


def test_a_short_run_logs_no_progress(caplog):
    with caplog.at_level(logging.INFO, logger=runner.log.name):
        list(runner._logged(iter(range(5)), 5))
    assert not [r for r in caplog.records if "replications:" in r.getMessage()]
