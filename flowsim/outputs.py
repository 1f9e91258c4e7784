"""An output folder: which files each kind of run writes into it, reading them back whole, and
making a folder a run's own (``claim``).

``load(folder)`` is what ``flowsim-report`` (and ``flowsim`` right after a run) builds the
summit pack from. Before anything is written it checks that the folder holds every file its kind
of run writes, and that each one reads: a missing, truncated or damaged file, or a folder that
is not a flowsim output folder, raises ``ReportError`` with one plain line naming the file and
what is wrong with it.

What each kind writes (the manifest says which kind a folder is; ``flowsim/cli.py`` writes them):

- a run: ``runs.parquet``, ``daily.parquet``, ``summary.csv``, ``manifest.json`` and
  ``flows.parquet`` (runs made before flows were written have none: the pack then has no flow
  diagram); ``patients.parquet`` is not read by the pack and not checked;
- a comparison (a scenario other than the baseline, or ``compare=[...]``): also
  ``comparison.csv``;
- an appraisal (``appraise.*`` set): ``manifest.json`` and, by what was asked,
  ``capacity_sweep.csv`` with ``capacity_sweep_runs.parquet``, ``bottlenecks.csv``,
  ``allocation.csv`` with ``allocation_frontier.csv``;
- a point of a sweep (``point.json`` beside its manifest): ``runs.parquet``, ``summary.csv``
  and, for a comparison, ``comparison.csv``; no daily series.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from flowsim.config import ConfigError

log = logging.getLogger("flowsim")


@dataclass
class Tables:
    """What an output folder holds (``None`` where a table was not written)."""

    out_dir: Path
    manifest: dict
    summary: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    daily: pd.DataFrame | None = None
    flows: pd.DataFrame | None = None
    capacity_sweep: pd.DataFrame | None = None
    bottlenecks: pd.DataFrame | None = None
    allocation: pd.DataFrame | None = None
    allocation_frontier: pd.DataFrame | None = None
    scenarios: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict:
        return self.manifest.get("config", {})

    @property
    def run(self) -> dict:
        return self.config.get("run", {})

    @property
    def window(self) -> dict:
        """The window the replications ran (the manifest's ``window``, else the run config)."""
        w = self.manifest.get("window") or {}
        warm = float(w.get("warmup_days", self.run.get("warmup_days", 0)))
        horizon = float(w.get("horizon_days", self.run.get("horizon_days", 0)))
        return {"warmup_days": warm, "horizon_days": horizon, "measured_days": horizon - warm}

    @property
    def measured_days(self) -> float:
        return self.window["measured_days"]

    @property
    def services_config(self) -> dict:
        return self.config.get("system", {}).get("services", {})

    @property
    def allocation_objective(self) -> str:
        return self.config.get("appraise", {}).get("allocate", {}).get("objective", "objective")

    @property
    def replications(self) -> int:
        if self.summary is not None and not self.summary.empty:
            return int(self.summary["n"].max())
        return int(self.run.get("replications", 0))


class ReportError(Exception):
    """The folder cannot make a report: not an output folder, or a file missing or damaged."""


COLUMNS = {
    "runs.parquet": ("scenario", "replication"),
    "daily.parquet": ("scenario", "replication", "day", "service", "warmup", "occupancy_mean",
                      "capacity", "delayed_mean", "waiting_mean"),
    "flows.parquet": ("scenario", "replication", "source", "target", "patients"),
    "summary.csv": ("scenario", "kpi", "mean", "ci_low", "ci_high", "p5", "p50", "p95", "n"),
    "comparison.csv": ("scenario", "kpi", "baseline_mean", "scenario_mean", "diff_mean",
                       "diff_ci_low", "diff_ci_high", "n"),
    "capacity_sweep.csv": ("service", "capacity", "total_cost_mean_gbp", "total_cost_ci_low_gbp",
                           "total_cost_ci_high_gbp", "optimal", "near_optimal"),
    "capacity_sweep_runs.parquet": ("capacity", "replication"),
    "bottlenecks.csv": ("service", "units_added", "per_unit", "ci_low", "ci_high"),
    "allocation.csv": (),
    "allocation_frontier.csv": ("budget_gbp", "objective_mean", "objective_ci_low",
                                "objective_ci_high"),
}  # fmt: skip
"""Each table's columns that the pack reads."""
KEYS = {"summary.csv": ("scenario", "kpi", "n"), "comparison.csv": ("scenario", "kpi")}
"""Columns of a CSV that no row may leave empty (an empty one is a row cut short)."""


def kind(out_dir: Path, manifest: dict) -> str:
    """``run``, ``comparison``, ``appraisal`` or ``sweep point``, from the manifest's config (as
    ``flowsim/cli.py`` and ``scenarios.arms`` decide what to run)."""
    config = manifest.get("config") or {}
    a = config.get("appraise") or {}
    allocate = a.get("allocate") or {}
    if (
        (a.get("capacity_sweep") or {}).get("service")
        or (a.get("bottleneck_units") or 0) > 0
        or (allocate.get("levers") and (allocate.get("budget_gbp") or 0) > 0)
    ):
        return "appraisal"
    if (Path(out_dir) / "point.json").is_file():
        return "sweep point"
    return "comparison" if _compares(config) else "run"


def _compares(config: dict) -> bool:
    """Whether the run compared scenarios with the baseline (and so wrote comparison.csv)."""
    name = (config.get("scenario") or {}).get("name", "baseline")
    return name != "baseline" or any(n != name for n in config.get("compare") or [])


def expected(out_dir: Path, manifest: dict) -> tuple[list[str], list[str]]:
    """(files the folder's kind of run always writes, files read only when present)."""
    k = kind(out_dir, manifest)
    config = manifest["config"]
    if k == "appraisal":
        a = config["appraise"]
        need = []
        if (a.get("capacity_sweep") or {}).get("service"):
            need += ["capacity_sweep.csv", "capacity_sweep_runs.parquet"]
        if (a.get("bottleneck_units") or 0) > 0:
            need.append("bottlenecks.csv")
        if (a.get("allocate") or {}).get("levers") and (a["allocate"].get("budget_gbp") or 0) > 0:
            need += ["allocation.csv", "allocation_frontier.csv"]
        return need, []
    compared = ["comparison.csv"] if _compares(config) else []
    if k == "sweep point":
        return ["runs.parquet", "summary.csv", *compared], []
    return ["runs.parquet", "daily.parquet", "summary.csv", *compared], ["flows.parquet"]


def _manifest(out_dir: Path) -> dict:
    """The folder's manifest, or a ReportError saying why this is no output folder to report on."""
    if not out_dir.exists():
        raise ReportError(f"{out_dir} does not exist")
    if not out_dir.is_dir():
        raise ReportError(f"{out_dir} is not a folder; give the output folder of a flowsim run")
    path = out_dir / "manifest.json"
    if not path.is_file():
        names = {p.name for p in out_dir.iterdir()}
        if "errors.json" in names:
            why = f"its run failed (see {out_dir / 'errors.json'})"
        elif names & {"runs.parquet", "daily.parquet", "summary.csv", "capacity_sweep.csv"}:
            why = "its run did not finish (the manifest is written last); rerun flowsim"
        elif "sweep.parquet" in names or "points" in names:
            why = f"{out_dir} is a sweep's folder; give one of its points/<key> folders"
        else:
            why = f"{out_dir} is not a flowsim output folder"
        raise ReportError(f"{path} is missing: {why}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path} is damaged (not JSON: {err})") from None
    except OSError as err:
        raise ReportError(f"{path} cannot be read ({err.strerror or err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise ReportError(f"{path} is damaged (no config in it; not a flowsim manifest)")
    return manifest


def _read(path: Path) -> pd.DataFrame:
    """One table, read whole, checked for the columns the pack reads; a ReportError naming the
    file if it is empty, cut short or not a table of its kind."""
    if path.stat().st_size == 0:
        raise ReportError(f"{path} is damaged (empty); rerun flowsim to make it")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            df = pq.read_table(path).to_pandas()
        except Exception as err:  # pyarrow's errors, said plainly, naming the file
            first = re.sub(r"^Could not open Parquet input source '.*?': ", "", str(err).strip())
            first = first.split(". ")[0].splitlines()[0] if first else type(err).__name__
            raise ReportError(f"{path} is damaged (not a readable parquet file: {first})") from None
    else:
        with open(path, "rb") as fh:
            fh.seek(-1, 2)
            if fh.read(1) not in (b"\n", b"\r"):
                raise ReportError(f"{path} is damaged (cut short: its last line has no end)")
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ReportError(f"{path} is damaged (not a CSV table: {first})") from None
        for col in KEYS.get(path.name, ()):
            if col in df and df[col].isna().any():
                row = int(df[col].isna().to_numpy().argmax()) + 2  # a 1-based line, after the head
                raise ReportError(f"{path} is damaged (line {row} has no {col})")
    missing = [c for c in COLUMNS.get(path.name, ()) if c not in df.columns]
    if missing:
        raise ReportError(
            f"{path} is damaged (no column {', '.join(missing)}; not a flowsim {path.stem} table)"
        )
    return df


def load(out_dir: Path) -> Tables:
    """Read an output folder's tables, each read whole and checked first (see the module
    docstring): a ReportError names the first file missing or damaged, and nothing is written."""
    out_dir = Path(out_dir)
    t = Tables(out_dir, _manifest(out_dir))
    need, optional = expected(out_dir, t.manifest)
    for name in need:
        if not (out_dir / name).is_file():
            raise ReportError(f"{out_dir / name} is missing; rerun flowsim to make it")
    names = need + [n for n in optional if (out_dir / n).is_file()]
    for name in [*names, *(n for n in COLUMNS if n not in names and (out_dir / n).is_file())]:
        df = _read(out_dir / name)
        stem = Path(name).stem
        if hasattr(t, stem):
            setattr(t, stem, df)
    if t.summary is not None:
        t.scenarios = list(dict.fromkeys(t.summary["scenario"]))
        if t.runs is not None:
            _agree(out_dir, t.summary, t.runs)
    return t


def _agree(out_dir: Path, summary: pd.DataFrame, runs: pd.DataFrame) -> None:
    """summary.csv has a row for every (scenario, KPI) of runs.parquet (a file cut at a line's
    end, or left from another run, does not)."""
    kpis = [c for c in runs.columns if c not in ("scenario", "replication")]
    want = {(s, k) for s in dict.fromkeys(runs["scenario"]) for k in kpis}
    lost = want - set(zip(summary["scenario"], summary["kpi"]))
    if lost:
        s, k = sorted(lost)[0]
        raise ReportError(
            f"{out_dir / 'summary.csv'} does not match {out_dir / 'runs.parquet'} ({len(lost)} "
            f"KPI row(s) missing, e.g. {k} of {s}); rerun flowsim to make it"
        )


# -- a run's own folder ------------------------------------------------------------------------

OWNED = (
    *COLUMNS, "patients.parquet", "manifest.json", "errors.json", "report.html",
    "summit_pack.xlsx", "summit_pack.pptx", "figures", ".*.tmp",
)  # fmt: skip
"""What a run or an appraisal writes into its folder: the tables above, the patient log, the
manifest (or the errors), the summit pack, and a temporary file left by a killed write."""


def claim(out_dir: Path, resolved: dict, key: Callable[[dict], str]) -> None:
    """Make ``out_dir`` the folder of the run of ``resolved``: an empty folder is taken as it is;
    a folder holding a run of the same config (the same ``key``: its results-relevant part) has
    every file a run writes removed, so no file of the old run (a ``comparison.csv``, a figure)
    outlives it; any other folder is refused (``ConfigError``) and left untouched."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    owner = None
    for name in ("manifest.json", "errors.json"):
        try:
            owner = json.loads((out_dir / name).read_text())["config"]
            break
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if owner is None or key(owner) != key(resolved):
        held = "a run of another config" if owner is not None else "files of something else"
        raise ConfigError(
            f"hydra.run.dir: {out_dir} is not empty: it holds {held}. A run owns its folder: "
            f"choose a new folder (hydra.run.dir=...), or delete that one"
        )
    for pattern in OWNED:
        for path in out_dir.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    log.info("%s held an earlier run of the same config: its files were replaced", out_dir)
