"""The ``flowsim`` command: a Hydra app that composes the config, validates it, runs the
replications and writes the output files. Thin: the work is in runner.py and results.py."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from flowsim import results, runner
from flowsim.config import ConfigError, validate

log = logging.getLogger("flowsim")
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")


def _fail(message: str, out_dir: Path | None) -> None:
    """Report bad input in plain words, leave nothing behind, exit non-zero."""
    print(f"flowsim: invalid input\n  {message.replace(chr(10), chr(10) + '  ')}", file=sys.stderr)
    if out_dir is not None and out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    sys.exit(2)


def _format(x: float, kpi: str) -> str:
    if x != x:
        return "n/a"
    if kpi.endswith("_rate"):
        return f"{100 * x:.1f}%"
    if abs(x) >= 1e6:
        return f"{x / 1e6:,.2f}m"
    return f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"


def print_summary(summary, title: str) -> None:
    print(f"\n{title}")
    print(f"  {'KPI':<40} {'mean':>10}   {'95% CI':>23}")
    for scenario, grp in summary.groupby("scenario", sort=False):
        rows = grp.set_index("kpi")
        for kpi, label in results.HEADLINE:
            if kpi in rows.index:
                r = rows.loc[kpi]
                ci = f"{_format(r.ci_low, kpi)} to {_format(r.ci_high, kpi)}"
                print(f"  {label:<40} {_format(r['mean'], kpi):>10}   {ci:>23}")
        print(f"  (scenario {scenario}, {int(rows.loc['admissions', 'n'])} replications)")


def main(cfg: DictConfig) -> float:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    try:
        config = validate(resolved)
    except ConfigError as err:
        _fail(str(err), out_dir)
    run = config.run
    started = time.perf_counter()
    log.info(
        "system %s, scenario %s: %d replications of %g days (warm-up %g) on %d workers",
        config.system.name,
        config.scenario.name,
        run.replications,
        run.horizon_days,
        run.warmup_days,
        run.jobs,
    )
    outcome = runner.run(
        [(config.scenario.name, config)],
        jobs=run.jobs,
        progress=run.progress and sys.stderr.isatty(),
    )
    meta = results.manifest(resolved, run.seed)
    if outcome.errors:
        results.write_json({"errors": outcome.errors, **meta}, out_dir / "errors.json")
        print(
            f"flowsim: {len(outcome.errors)} replication(s) failed; see {out_dir / 'errors.json'}",
            file=sys.stderr,
        )
        sys.exit(1)
    provenance = {k: meta[k] for k in ("config_hash", "seed", "versions")}
    summary = results.summary(outcome.runs)
    results.write_parquet(outcome.runs, out_dir / "runs.parquet", provenance)
    results.write_parquet(outcome.daily, out_dir / "daily.parquet", provenance)
    if outcome.patients is not None:
        results.write_parquet(outcome.patients, out_dir / "patients.parquet", provenance)
    results.write_csv(summary, out_dir / "summary.csv")
    results.write_json(meta, out_dir / "manifest.json")
    for warning in results.warmup_check(outcome.daily, run.warmup_days):
        log.warning(warning)
    print_summary(
        summary,
        f"flowsim: {config.system.name} system, "
        f"{run.horizon_days - run.warmup_days:g} days after a "
        f"{run.warmup_days:g}-day warm-up",
    )
    seconds = time.perf_counter() - started
    print(
        f"\n  wrote runs.parquet, daily.parquet, summary.csv, manifest.json"
        f"{', patients.parquet' if outcome.patients is not None else ''} to {out_dir}"
        f"  ({seconds:.0f} s)"
    )
    value = summary.set_index(["scenario", "kpi"]).loc[
        (config.scenario.name, "delayed_bed_days"), "mean"
    ]
    return float(value) if not math.isnan(value) else math.inf


def entry() -> None:
    """Console script: ``flowsim [overrides]``; ``FLOWSIM_ROOT`` lets configs find data files."""
    os.environ.setdefault("FLOWSIM_ROOT", str(Path(CONFIG_DIR).parent))
    hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")(main)()


if __name__ == "__main__":
    entry()
