"""Calibration to a system's observed data: the objective (targets against the model, common
random numbers for every parameter set), an optimiser (optuna, resumable from its SQLite
storage), sensitivity screening (SALib's Morris method), and the calibrated system config.

``flowsim-calibrate calibration/default.yaml`` runs what the file asks; see calibration/README.md.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from flowsim import files, runner, targets, uncertainty
from flowsim.config import ConfigError, Strict, read_yaml, validate

log = logging.getLogger("flowsim.calibrate")
ROOT = Path(__file__).resolve().parent.parent


class Parameter(Strict):
    """A system parameter to calibrate (dotted path under ``system``), with its bounds."""

    path: str
    low: float
    high: float
    integer: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> Parameter:
        if not self.low < self.high:
            raise ValueError(f"low must be below high ({self.low:g} >= {self.high:g})")
        return self


class Calibration(Strict):
    """A calibration file: the base system and run, the parameters, the targets, the method."""

    name: str
    targets: str
    system: str = "default"
    overrides: list[str] = []
    parameters: Annotated[list[Parameter], Field(min_length=1)]
    distance: Literal["relative_rmse", "standardised"] = "relative_rmse"
    method: Literal["optuna", "abc", "morris"] = "optuna"
    trials: Annotated[int, Field(gt=0)] = 40
    abc_population: Annotated[int, Field(gt=4)] = 40
    abc_generations: Annotated[int, Field(gt=0)] = 5
    morris_trajectories: Annotated[int, Field(gt=1)] = 10
    replications: Annotated[int, Field(gt=0)] = 4
    jobs: Annotated[int, Field(gt=0)] = 2
    seed: Annotated[int, Field(ge=0)] = 2026


def load(path: str | Path) -> Calibration:
    """Read and check a calibration file; errors name the file and the field."""
    from pydantic import ValidationError

    path = Path(path)
    raw = read_yaml(path)
    try:
        return Calibration.model_validate(raw)
    except ValidationError as err:
        e = err.errors()[0]
        field = ".".join(str(x) for x in e["loc"])
        raise ConfigError(f"{path}: {field}: {e['msg']}") from None


def base_config(cal: Calibration) -> dict:
    """The resolved config the ``flowsim`` command would run for this system and overrides."""
    from flowsim.cli import compose  # Hydra's composition, as the command does it

    resolved = compose([f"system={cal.system}", *cal.overrides])
    resolved["run"].update(
        {"replications": cal.replications, "jobs": cal.jobs, "seed": cal.seed, "progress": False}
    )
    return resolved


def with_values(resolved: dict, cal: Calibration, values: dict[str, float]) -> dict:
    """A copy of the config with the parameters set (an unknown path is an error)."""
    out = copy.deepcopy(resolved)
    for p in cal.parameters:
        node = out["system"]
        *parents, leaf = p.path.split(".")
        for k in parents:
            if not isinstance(node, dict) or k not in node:
                raise ConfigError(f"parameters: system.{p.path} does not exist in {cal.system}")
            node = node[k]
        if leaf not in node:
            raise ConfigError(f"parameters: system.{p.path} does not exist in {cal.system}")
        v = values[p.path]
        node[leaf] = int(round(v)) if p.integer else float(v)
    return out


class Objective:
    """Distance between the targets and the model at a parameter set. Every parameter set runs
    replications 0..R-1 of the same seed: common random numbers, so differences between sets
    are the parameters', not the noise's."""

    def __init__(self, cal: Calibration, cal_dir: Path) -> None:
        self.cal = cal
        self.base = base_config(cal)
        path = Path(cal.targets)
        self.targets_path = path if path.is_absolute() else (cal_dir / path)
        config = validate(self.base)
        run = config.run
        self.placed = targets.place(
            targets.read(self.targets_path),
            config.system.start_date,
            run.warmup_days,
            run.horizon_days,
        )
        self.evaluations = 0
        self.jobs = cal.jobs

    def simulate(self, values: dict[str, float]) -> pd.DataFrame:
        config = validate(with_values(self.base, self.cal, values))
        outcome = runner.run([("baseline", config)], jobs=self.cal.jobs)
        if outcome.errors:
            raise RuntimeError(f"replication failed: {outcome.errors[0]['error']}")
        self.evaluations += 1
        return targets.simulated(outcome.daily, self.placed)

    def __call__(self, values: dict[str, float]) -> float:
        return targets.distance(self.simulate(values), self.placed, self.cal.distance)


def synthesise(
    cal: Calibration,
    truth: dict[str, float],
    measures: list[str],
    weeks: int,
    seed: int,
    replications: int = 1,
) -> pd.DataFrame:
    """A synthetic "observed" targets table from known parameter values: the mean of
    ``replications`` runs of seed ``seed`` (not the calibration's seed), weekly from the end of
    the warm-up. For checking that a calibration recovers what generated the data."""
    import datetime as dt

    resolved = with_values(base_config(cal), cal, truth)
    resolved["run"].update({"seed": seed, "replications": replications})
    config = validate(resolved)
    start = config.system.start_date + dt.timedelta(days=math.ceil(config.run.warmup_days))
    rows = []
    for m in measures:
        known = targets.unit(m)
        if known is None:
            raise ConfigError(f"synthesise: unknown measure {m!r}")
        unit = known[0]
        for w in range(weeks):
            rows.append((start + dt.timedelta(days=7 * w), "week", m, 0.0, unit))
    table = pd.DataFrame(rows, columns=list(targets.COLUMNS))
    t = targets.Targets(
        table.assign(line=0, kind=[targets.unit(m)[1] for m in table["measure"]]),
        Path("synthetic"),
    )
    placed = targets.place(
        t, config.system.start_date, config.run.warmup_days, config.run.horizon_days
    )
    outcome = runner.run([("baseline", config)], jobs=cal.jobs)
    sim = targets.simulated(outcome.daily, placed)
    mean = sim.groupby(["measure", "period_start"], sort=False)["value"].mean()
    table["value"] = [
        round(float(mean.loc[(m, d)]), 3) for m, d in zip(table["measure"], table["period_start"])
    ]
    return table


# -- methods ----------------------------------------------------------------------------------


def optimise(objective: Objective, out_dir: Path, progress: bool = False) -> pd.DataFrame:
    """Optuna TPE (seeded) over the bounds; the study lives in ``out_dir/study.db`` so a rerun
    resumes it and runs only the trials still missing. Returns every trial."""
    import optuna

    cal = objective.cal
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out_dir / 'study.db').resolve()}"
    study = optuna.create_study(
        study_name=cal.name,
        storage=storage,
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=cal.seed),
    )
    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    todo = max(0, cal.trials - done)
    log.info("optuna: %d trials done, %d to run (study %s in %s)", done, todo, cal.name, storage)

    def trial(t: optuna.Trial) -> float:
        values = {
            p.path: (
                t.suggest_int(p.path, int(p.low), int(p.high))
                if p.integer
                else t.suggest_float(p.path, p.low, p.high)
            )
            for p in cal.parameters
        }
        return objective(values)

    if todo:
        study.optimize(trial, n_trials=todo, show_progress_bar=progress)
    rows = [
        {"trial": t.number, **t.params, "distance": t.value}
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    return pd.DataFrame(rows).sort_values("trial", ignore_index=True)


def screen(objective: Objective, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SALib's Morris elementary effects on the distance: which parameters matter."""
    from SALib.analyze import morris as analyse
    from SALib.sample import morris as sample

    cal = objective.cal
    problem = {
        "num_vars": len(cal.parameters),
        "names": [p.path for p in cal.parameters],
        "bounds": [[p.low, p.high] for p in cal.parameters],
    }
    x = sample.sample(problem, cal.morris_trajectories, num_levels=4, seed=cal.seed)
    stream = range(len(x))
    if progress:
        from tqdm import tqdm

        stream = tqdm(stream, desc="morris", unit="set")
    y = np.array([objective(dict(zip(problem["names"], x[i]))) for i in stream])
    res = analyse.analyze(problem, x, y, num_levels=4, seed=cal.seed)
    table = pd.DataFrame(
        {
            "parameter": problem["names"],
            "mu_star": res["mu_star"],
            "mu_star_ci95": res["mu_star_conf"],
            "sigma": res["sigma"],
        }
    ).sort_values("mu_star", ascending=False, ignore_index=True)
    runs = pd.DataFrame(x, columns=problem["names"]).assign(distance=y)
    return table, runs


def abc_smc(objective: Objective, out_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ABC-SMC (pyabc) for a posterior: uniform priors on the bounds, the objective's distance,
    an adaptive (median) epsilon. Returns the final population (particles with weights) and a
    summary: weighted mean and 5/50/95% quantiles.

    Particles are proposed and evaluated one after another from the calibration's seed, so the
    same calibration gives the same posterior, bit for bit; each particle's replications run in
    parallel. (pyabc's multicore samplers accept whichever particles finish first, which depends
    on timing: not reproducible.)"""
    import pyabc

    cal = objective.cal
    names = {f"p{k}": p for k, p in enumerate(cal.parameters)}
    prior = pyabc.Distribution(
        **{k: pyabc.RV("uniform", p.low, p.high - p.low) for k, p in names.items()}
    )

    def values(par) -> dict[str, float]:
        return {p.path: float(par[k]) for k, p in names.items()}

    def model(par) -> dict:
        return {"distance": objective(values(par))}

    abc = pyabc.ABCSMC(
        model,
        prior,
        lambda x, x0: x["distance"],
        population_size=cal.abc_population,
        sampler=pyabc.sampler.SingleCoreSampler(),
    )
    # pyabc draws only from NumPy's global generator: seed it for the run, then put it back
    outside = np.random.get_state()
    np.random.seed(cal.seed)
    try:
        abc.new(f"sqlite:///{(out_dir / 'abc.db').resolve()}", {"distance": 0.0})
        history = abc.run(max_nr_populations=cal.abc_generations)
    finally:
        np.random.set_state(outside)
    objective.evaluations = int(history.total_nr_simulations)
    frame, weights = history.get_distribution(m=0, t=history.max_t)
    particles = frame.rename(columns={k: p.path for k, p in names.items()})
    particles["weight"] = weights
    rows = []
    for k, p in names.items():
        x = frame[k].to_numpy()
        q = [
            pyabc.weighted_statistics.weighted_quantile(x, weights, alpha=a)
            for a in (0.05, 0.5, 0.95)
        ]
        rows.append(
            {
                "parameter": p.path,
                "mean": float(np.sum(x * weights)),
                "q05": q[0],
                "median": q[1],
                "q95": q[2],
            }
        )
    return particles.reset_index(drop=True), pd.DataFrame(rows)


# -- the fit and the calibrated system ----------------------------------------------------------


def fit_table(objective: Objective, values: dict[str, float]) -> pd.DataFrame:
    """Observed against simulated at the calibrated values: mean, 95% CI and p5/p95 across
    replications, per measure and period."""
    sim = objective.simulate(values)
    rows = []
    for (measure, start), grp in sim.groupby(["measure", "period_start"], sort=False):
        x = grp["value"].to_numpy(dtype=float)
        mean, lo, hi = uncertainty.interval(x, lower=0.0)  # every measure is a count or a time
        obs = objective.placed
        o = obs[(obs["measure"] == measure) & (obs["period_start"] == start)]["value"].iloc[0]
        rows.append(
            {
                "measure": measure,
                "period_start": start,
                "observed": float(o),
                "simulated_mean": mean,
                "ci_low": lo,
                "ci_high": hi,
                "p5": float(np.percentile(x, 5)),
                "p95": float(np.percentile(x, 95)),
                "n": len(x),
            }
        )
    return pd.DataFrame(rows)


def system_config(objective: Objective, values: dict[str, float], name: str) -> dict:
    """The calibrated system as a config that ``flowsim system=<name>`` runs."""
    system = with_values(objective.base, objective.cal, values)["system"]
    system["name"] = name
    note = ", ".join(f"{k}={v:g}" for k, v in values.items())
    system["description"] = (
        f"{objective.cal.system} calibrated to {objective.targets_path.name} ({note})"
    )
    return system


def fit_figure(fit: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from flowsim.styling import PALETTE

    measures = list(dict.fromkeys(fit["measure"]))
    cols = 2
    rows = math.ceil(len(measures) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=measures, vertical_spacing=0.12)
    for k, m in enumerate(measures):
        f = fit[fit["measure"] == m]
        r, c = k // cols + 1, k % cols + 1
        x = [str(d) for d in f["period_start"]]
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=list(f["p95"]) + list(f["p5"])[::-1],
                fill="toself",
                fillcolor="rgba(0,114,178,0.15)",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=k == 0,
                name="model, 90% of replications",
            ),
            row=r,
            col=c,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=f["simulated_mean"],
                line={"color": PALETTE[0]},
                showlegend=k == 0,
                name="model mean",
            ),
            row=r,
            col=c,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=f["observed"],
                mode="markers",
                marker={"color": PALETTE[3]},
                showlegend=k == 0,
                name="observed",
            ),
            row=r,
            col=c,
        )
    fig.update_layout(
        title="Calibrated model against the observed data",
        template="plotly_white",
        height=300 * rows + 120,
    )
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flowsim-calibrate",
        description="Calibrate a system to observed data (a targets CSV), or screen which "
        "parameters matter; writes the calibrated system config and its fit.",
    )
    parser.add_argument("config", type=Path, help="a calibration file (calibration/*.yaml)")
    parser.add_argument("--out", type=Path, help="output folder (default calibration/out/<name>)")
    parser.add_argument(
        "--method", choices=["optuna", "abc", "morris"], help="override the file's method"
    )
    parser.add_argument("--trials", type=int, help="override the file's number of trials")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not copy the calibrated system into calibration/system/ (where `flowsim "
        "system=<name>` finds it); it is always written to the output folder",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        cal = load(args.config)
        if args.method:
            cal.method = args.method
        if args.trials:
            cal.trials = args.trials
        objective = Objective(cal, args.config.parent)
        with_values(objective.base, cal, {p.path: p.low for p in cal.parameters})
    except ConfigError as err:
        print(f"flowsim-calibrate: invalid input\n  {err}", file=sys.stderr)
        return 2
    out = args.out or (ROOT / "calibration" / "out" / cal.name)
    out.mkdir(parents=True, exist_ok=True)
    progress = sys.stderr.isatty()
    if cal.method == "morris":
        table, runs = screen(objective, progress)
        files.write_csv(table, out / "sensitivity.csv")
        files.write_csv(runs, out / "sensitivity_runs.csv")
        print(table.to_string(index=False))
        print(f"\nwrote sensitivity.csv ({objective.evaluations} parameter sets) to {out}")
        return 0
    if cal.method == "abc":
        particles, posterior = abc_smc(objective, out)
        files.write_csv(particles, out / "posterior_particles.csv")
        files.write_csv(posterior, out / "posterior.csv")
        print(posterior.to_string(index=False))
        values = dict(zip(posterior["parameter"], posterior["median"]))
        label = f"posterior median ({len(particles)} particles)"
        evaluated = f"{objective.evaluations} model evaluations"
    else:
        trials = optimise(objective, out, progress)
        files.write_csv(trials, out / "trials.csv")
        best = trials.loc[trials["distance"].idxmin()]
        values = {p.path: float(best[p.path]) for p in cal.parameters}
        label = f"distance {best['distance']:.4f}"
        evaluated = f"{len(trials)} trials"
    fit = fit_table(objective, values)
    files.write_csv(fit, out / "fit.csv")
    name = f"{cal.name}_calibrated"
    system = system_config(objective, values, name)
    import yaml

    header = f"# calibrated by flowsim-calibrate {args.config.name} ({cal.method}): {label}\n"
    text = header + yaml.safe_dump(system, sort_keys=False)
    places = [out / "system" / f"{name}.yaml"]
    if not args.no_install:
        places.append(ROOT / "calibration" / "system" / f"{name}.yaml")
    for place in places:
        place.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(place, lambda tmp: Path(tmp).write_text(text))
    fig = fit_figure(fit)
    files.write_atomic(out / "fit.html", lambda tmp: fig.write_html(tmp, include_plotlyjs=True))
    print("best values: " + ", ".join(f"{k} = {v:.4g}" for k, v in values.items()))
    print(f"{label} after {evaluated}")
    print(f"wrote fit.csv, fit.html and system/{name}.yaml ({cal.method}) to {out}")
    if args.no_install:
        print(f"run it: flowsim --config-dir {out} system={name}")
    else:
        print(f"run it: flowsim system={name}   (from calibration/system/{name}.yaml)")
    return 0


def entry() -> None:
    sys.exit(main())
