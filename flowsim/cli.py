"""The ``flowsim`` command: a Hydra app that composes the config, checks it, runs the
replications and writes the output files; the only module that knows Hydra (its errors, its
sweeps' plan and callback). Thin: the work is in runner.py, files.py, sweep.py and printout.py."""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from flowsim import files, outputs, printout, runner, scenarios, sweep, uncertainty, warmup
from flowsim.config import Config, ConfigError, validate, yaml_problem

log = logging.getLogger("flowsim")
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
SCENARIO_DIR = Path(CONFIG_DIR).parent / "scenarios"


def _fail(message: str, out_dir: Path | None) -> None:
    """Report bad input in plain words, leave nothing behind, exit 2.

    Hydra made the output folder (and its parents, e.g. ``outputs/<date>/``) before the run was
    checked: an empty one is removed, with its empty parents up to the working directory."""
    print(f"flowsim: invalid input\n  {message.replace(chr(10), chr(10) + '  ')}", file=sys.stderr)
    if out_dir is not None:
        stop, folder = Path.cwd().resolve(), out_dir.resolve()
        while folder != stop and stop in folder.parents and folder.is_dir():
            if any(folder.iterdir()):
                break
            folder.rmdir()
            folder = folder.parent
        if out_dir.is_dir() and not any(out_dir.iterdir()):  # outside the working directory
            out_dir.rmdir()
    sys.exit(2)


def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        resolved = _container(cfg)
    except ConfigError as err:  # sweep points were all checked before the first started
        _fail(str(err), None if multirun else out_dir)
    if multirun:
        return _sweep_point(resolved)
    try:
        config, todo, size = check(resolved)
        outputs.claim(out_dir, resolved, sweep.point_key)
    except ConfigError as err:
        _fail(str(err), out_dir)
    run = todo[0][1].run
    started = time.perf_counter()
    if _appraising(config):
        return _appraise(config, resolved, out_dir, started)
    log.info(
        "system %s, %s: %d replications of %g days (warm-up %g) on %d worker%s, %s engine",
        config.system.name,
        " vs ".join(name for name, _ in todo),
        run.replications,
        run.horizon_days,
        run.warmup_days,
        size.workers,
        "s" if size.workers > 1 else "",
        run.engine,
    )
    outcome = runner.run(todo, jobs=run.jobs, progress=run.progress)
    if outcome.errors:
        meta = {**files.manifest(resolved, run.seed), "window": _window(run)}
        files.write_json({"errors": outcome.errors, **meta}, out_dir / "errors.json")
        print(
            f"flowsim: {len(outcome.errors)} replication(s) failed; see {out_dir / 'errors.json'}",
            file=sys.stderr,
        )
        sys.exit(1)
    summary = uncertainty.summary(outcome.runs)
    comparison = scenarios.compare(outcome.runs) if len(todo) > 1 else None
    tables = {
        "runs.parquet": outcome.runs,
        "daily.parquet": outcome.daily,
        "flows.parquet": outcome.flows,
        "patients.parquet": outcome.patients,
        "summary.csv": summary,
        "comparison.csv": comparison,
    }
    written = files.write_outputs(out_dir, tables, resolved, run.seed, window=_window(run))
    checks = warmup.warmup_check(outcome.daily, run.warmup_days)
    for warning in checks + warmup.growth_check(outcome.daily, run.warmup_days):
        log.warning(warning)
    title = (
        f"flowsim: {config.system.name} system, {run.horizon_days - run.warmup_days:g} days "
        f"after a {run.warmup_days:g}-day warm-up"
    )
    printout.summary(summary, title, outcome.runs)
    printout.national_measures(summary, resolved)
    if comparison is not None:
        printout.comparison(comparison)
    written += _pack(run, out_dir)
    seconds = time.perf_counter() - started
    print(f"\n  wrote {', '.join(written)} to {out_dir}  ({seconds:.0f} s)")
    value = summary.set_index(["scenario", "kpi"]).loc[(todo[-1][0], "delayed_bed_days"), "mean"]
    return float(value) if not math.isnan(value) else math.inf


def _container(cfg: DictConfig) -> dict:
    """The composed config as plain data, interpolations resolved."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        where = getattr(err, "full_key", None)
        raise ConfigError(f"{where + ': ' if where else ''}{_first_line(str(err))}") from None


def whole_distributions(args: list[str]) -> list[str]:
    """Command-line arguments in which a distribution given whole replaces the old one.

    Hydra merges a mapping override into the mapping it overrides, so
    ``'system.services.reablement.stay={dist: gamma, mean: 12, sd: 8}'`` would keep the old
    lognormal's ``median`` beside the new ``mean`` and ``sd`` (and refuse the new key ``sd``). An
    override whose value is a mapping with a ``dist`` key is a whole distribution: it becomes
    ``~<key>`` (delete the old one) then ``+<key>=<value>`` (add the new one), two overrides
    with distinct keys, which a sweep keeps both of.
    """
    out = []
    parser = OverridesParser.create()
    for arg in args:
        try:
            (o,) = parser.parse_overrides([arg]) if not arg.startswith("-") else (None,)
        except Exception:  # not an override (a flag's value), or malformed: Hydra says so
            o = None
        if (
            o is not None
            and not (o.is_delete() or o.is_add() or o.is_sweep_override())
            and isinstance(o.value(), dict)
            and "dist" in o.value()
        ):
            out += [f"~{o.key_or_group}", f"+{o.key_or_group}={arg.split('=', 1)[1]}"]
        else:
            out.append(arg)
    return out


def check(resolved: dict, sweeping: bool = False) -> tuple[Config, list, runner.Size]:
    """Everything that can be known wrong before a run: the config's rules, the scenarios, and
    the size of the work (``runner.check_size``). Raises ``ConfigError`` naming the field."""
    config = validate(resolved)
    if sweeping and _appraising(config):
        raise ConfigError("appraise: appraisals cannot be swept; run them one at a time")
    todo = scenarios.arms(config, SCENARIO_DIR)
    arms = todo if not _appraising(config) else todo[:1] * _appraisal_arms(config)
    size = runner.check_size(arms, config.run.jobs, config.run.allow_large)
    return config, todo, size


def _appraisal_arms(config: Config) -> int:
    """How many arms the asked-for appraisals run at most (for the size of the work)."""
    a = config.appraise
    n = 0
    if a.capacity_sweep.service:
        n += len(a.capacity_sweep.capacities)
    if a.bottleneck_units:
        n += len(config.system.services) + 1
    if a.allocate.levers and a.allocate.budget_gbp:
        n += max(a.allocate.trials, 60) + 1  # a grid of up to 60 mixes, or optuna's trials
    return max(n, 1)


def _sweep_point(resolved: dict) -> float:
    """One point of ``flowsim -m``: skipped if done, its tables written atomically under
    ``<sweep dir>/points/<key>/``, a failure kept as ``<sweep dir>/errors/<key>.json``."""
    hc = HydraConfig.get()

    def work(folder: Path) -> float:
        config, todo, _ = check(resolved, sweeping=True)
        run = todo[0][1].run
        outcome = runner.run(todo, jobs=run.jobs, progress=False)
        if outcome.errors:
            first = outcome.errors[0]
            raise RuntimeError(
                f"{len(outcome.errors)} replication(s) failed; first: replication "
                f"{first['replication']} of {first['scenario']}: {first['error']}\n"
                f"{first['traceback']}"
            )
        summary = uncertainty.summary(outcome.runs)
        tables = {
            "runs.parquet": outcome.runs,
            "summary.csv": summary,
            "comparison.csv": scenarios.compare(outcome.runs) if len(todo) > 1 else None,
        }
        files.write_outputs(folder, tables, resolved, run.seed, window=_window(run))
        last = summary.set_index(["scenario", "kpi"]).loc[(todo[-1][0], "delayed_bed_days")]
        return float(last["mean"])

    value = sweep.run_point(Path(hc.sweep.dir), list(hc.overrides.task), resolved, work)
    try:  # Hydra makes a folder per job; a point's results live under points/, so drop it
        Path(hc.runtime.output_dir).rmdir()
    except OSError:  # not empty (the user asked for something there), or already gone
        pass
    return value


def _window(run) -> dict:
    """The window the replications really ran (a scenario's measured_days can lengthen it)."""
    return {
        "warmup_days": run.warmup_days,
        "horizon_days": run.horizon_days,
        "measured_days": run.horizon_days - run.warmup_days,
    }


def _pack(run, out_dir: Path) -> list[str]:
    """The summit pack from the tables just written; a failure here keeps the tables."""
    if not run.report:
        return []
    from flowsim import report

    try:
        return report.build(out_dir, images=run.figures)
    except Exception as exc:  # the tables are safe; say how to rebuild, exit non-zero
        log.exception("summit pack failed")
        print(
            f"flowsim: the summit pack could not be built ({type(exc).__name__}: {exc}); the "
            f"tables are written. Rebuild it with: flowsim-report {out_dir}",
            file=sys.stderr,
        )
        sys.exit(1)


def _appraising(config: Config) -> bool:
    a = config.appraise
    return bool(
        a.capacity_sweep.service
        or a.bottleneck_units
        or (a.allocate.levers and a.allocate.budget_gbp)
    )


def _appraise(config: Config, resolved: dict, out_dir: Path, started: float) -> float:
    """Capacity sweep, bottleneck view and budget allocation, as asked in ``appraise``."""
    from flowsim import appraisal

    run = config.run
    tables = appraisal.run_appraisals(config, run.jobs, run.progress)
    named = {
        f"{stem}.{'parquet' if stem.endswith('_runs') else 'csv'}": t for stem, t in tables.items()
    }
    files.write_outputs(out_dir, named, resolved, run.seed, window=_window(run))
    pack = _pack(run, out_dir)
    value = printout.appraisals(tables)
    seconds = time.perf_counter() - started
    print(
        f"\n  wrote {', '.join(sorted(tables))}, manifest.json"
        f"{''.join(', ' + p for p in pack)} to {out_dir}  ({seconds:.0f} s)"
    )
    return value


def plan(task_overrides: list[str]) -> list[list[str]]:
    """The override list of every job of a sweep, as Hydra's basic sweeper makes them: one
    override per key (the last given), each sweep's values in turn, the product in the order
    the keys were given (``tests/test_sweep.py`` checks this against Hydra's own)."""
    keyed: dict[str, list[str]] = {}
    for o in OverridesParser.create().parse_overrides(list(task_overrides)):
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise ConfigError(f"{key}: only lists of values can be swept (a,b,c or choice)")
            keyed[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            keyed[key] = [f"{key}={o.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*keyed.values())]


class SweepCallback(Callback):
    """Hydra's side of a sweep (``flowsim -m``): check every point and plan the sweep at its
    start; gather ``sweep.parquet`` at its end (the work is in sweep.py)."""

    def on_multirun_start(self, config, **kwargs) -> None:
        jobs = plan(list(config.hydra.overrides.task))
        check_points(jobs)  # exits 2, naming the bad points, before anything is written
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep.start(sweep_dir, jobs)
        global _BAR
        if sys.stderr.isatty():  # kept outside the callback: launchers pickle the callbacks
            _BAR = sweep.Bar(sweep_dir)

    def on_multirun_end(self, config, **kwargs) -> None:
        global _BAR
        if _BAR is not None:
            _BAR.close()
            _BAR = None
        if sweep.finish(Path(config.hydra.sweep.dir)):
            sys.exit(1)


_BAR = None


def compose(overrides: list[str]) -> dict:
    """The resolved config the ``flowsim`` command composes from ``overrides``, outside a
    command (``flowsim-calibrate``, Python); a composition error is a ``ConfigError``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    os.environ.setdefault("FLOWSIM_ROOT", str(Path(CONFIG_DIR).parent))
    try:
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            cfg = hydra_compose("config", overrides=whole_distributions(list(overrides)))
    except Exception as exc:
        message = hydra_error(exc)
        if message is None:
            raise
        raise ConfigError(message) from None
    return _container(cfg)


def check_points(jobs: list[list[str]]) -> None:
    """Check every point of a sweep (``flowsim -m``) before the first one starts, as a single run
    is checked; name each bad point and exit 2 with nothing run. Called by the sweep's Hydra
    callback, while Hydra is initialised."""
    from hydra import compose

    problems = []
    for k, overrides in enumerate(jobs):
        try:
            cfg = compose(config_name="config", overrides=overrides)
            check(_container(cfg), sweeping=True)
        except ConfigError as err:
            problems.append((k, overrides, str(err)))
        except Exception as exc:  # Hydra could not compose the point
            message = hydra_error(exc)
            if message is None:
                raise
            problems.append((k, overrides, message))
    if problems:
        lines = [
            f"point {k + 1} of {len(jobs)} ({' '.join(o) or 'no overrides'}):\n    "
            + m.replace("\n", "\n    ")
            for k, o, m in problems
        ]
        _fail("\n".join(lines), None)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _relative(path: str) -> str:
    """A config file's path as a user would type it: relative to the working directory or to the
    project, where it lies inside either."""
    for base in (Path.cwd(), Path(CONFIG_DIR).parent):
        try:
            return str(Path(path).resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return path


def hydra_error(exc: BaseException) -> str | None:
    """A composition error (a YAML syntax error in a config file, an unknown config or key, a
    malformed override) in a few plain lines; None for anything else (a bug: its traceback is
    worth keeping)."""
    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
            return yaml_problem(e, _relative(e.problem_mark.name))
        if isinstance(e, yaml.YAMLError):
            return f"YAML syntax error: {_first_line(str(e))}"
    if not isinstance(exc, HydraException | OmegaConfBaseException):
        return None
    text = str(exc)
    if isinstance(exc, OverrideParseException):  # name the override it could not read
        text = f"{exc.override}: cannot read this override: {text}"
    if isinstance(exc.__cause__, OmegaConfBaseException):
        text += "\n" + str(exc.__cause__)
    keep = []
    for line in text.strip().splitlines():
        if line.startswith(("Config search path", "Set the environment variable HYDRA_FULL")):
            break
        if line.strip() and not line.strip().startswith(("full_key:", "object_type=")):
            keep.append(line.rstrip())
    return "\n".join(keep) or type(exc).__name__


def entry() -> None:
    """Console script: ``flowsim [overrides]``; ``FLOWSIM_ROOT`` lets configs find data files.

    Hydra prints its own errors (a YAML syntax error as a 60-line traceback) and exits 1; here
    they are raised to us instead (``HYDRA_FULL_ERROR``), reported in plain lines and exit 2,
    like every other bad input. A user who sets ``HYDRA_FULL_ERROR`` gets Hydra's tracebacks.
    """
    os.environ.setdefault("FLOWSIM_ROOT", str(Path(CONFIG_DIR).parent))
    full = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv[1:] = whole_distributions(sys.argv[1:])
    try:
        hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")(main)()
    except Exception as exc:
        message = None if full else hydra_error(exc)
        if message is None:
            raise
        _fail(message, None)


if __name__ == "__main__":
    entry()
