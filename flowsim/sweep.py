"""Resumable sweeps: ``flowsim -m <overrides> hydra.sweep.dir=D`` on any Hydra launcher.

Each point's results live in ``D/points/<key>/`` where ``key`` is the hash of the point's resolved
config (settings that cannot change a result, such as ``run.jobs``, left out). A point is written
into a hidden temporary folder and renamed into place when complete, so a killed sweep leaves no
partial point that the aggregator can read; a rerun skips complete points and retries failed ones.
A failing point writes ``D/errors/<key>.json`` (its overrides, config and traceback) and the
others go on. When the launcher is done, ``finish`` (called by ``cli.SweepCallback``, Hydra's
side) gathers every point of this sweep into ``D/sweep.parquet`` (one row per point and
replication; each override key a column) and the command exits non-zero if a point failed.
No Hydra here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from flowsim import files

log = logging.getLogger("flowsim.sweep")

NOT_RESULTS = ("jobs", "progress", "report", "figures")
"""Run settings that cannot change a result (results are identical whatever the workers)."""
PLAN = "sweep_plan.json"


def point_key(resolved: dict) -> str:
    """The hash that names a point: its resolved config without ``run.`` + NOT_RESULTS."""
    trimmed = json.loads(json.dumps(resolved, default=str))
    for k in NOT_RESULTS:
        trimmed.get("run", {}).pop(k, None)
    return files.config_hash(trimmed)[:20]


def _points(sweep_dir: Path) -> Path:
    return sweep_dir / "points"


def _errors(sweep_dir: Path) -> Path:
    return sweep_dir / "errors"


def is_done(sweep_dir: Path, key: str) -> bool:
    return (_points(sweep_dir) / key / "point.json").is_file()


def run_point(
    sweep_dir: Path,
    overrides: list[str],
    resolved: dict,
    work: Callable[[Path], float],
) -> float:
    """Run one point unless it is complete; ``work(folder)`` writes its tables into ``folder``.

    Returns the point's objective (what ``work`` returned, or the saved one when skipped; NaN
    when it failed). Never raises: a failure becomes ``errors/<key>.json``.
    """
    key = point_key(resolved)
    done_dir = _points(sweep_dir) / key
    error_file = _errors(sweep_dir) / f"{key}.json"
    if is_done(sweep_dir, key):
        log.info("point %s: already done, skipped (%s)", key, " ".join(overrides))
        _progress(sweep_dir)
        return float(json.loads((done_dir / "point.json").read_text())["objective"])
    log.info("point %s: running (%s)", key, " ".join(overrides))
    _points(sweep_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=_points(sweep_dir), prefix=f".{key}."))
    files.usual_mode(tmp, directory=True)
    try:
        objective = float(work(tmp))
        meta = {"key": key, "overrides": overrides, "objective": objective}
        (tmp / "point.json").write_text(json.dumps(meta, indent=2) + "\n")
        if done_dir.exists():  # another launcher finished the same point meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, done_dir)
        error_file.unlink(missing_ok=True)
        log.info("point %s: done", key)
    except BaseException as exc:  # kept as a record; the sweep goes on
        shutil.rmtree(tmp, ignore_errors=True)
        record = {
            "key": key,
            "overrides": overrides,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "config": resolved,
        }
        files.write_json(record, error_file)
        log.error("point %s: FAILED (%s): %s", key, " ".join(overrides), record["error"])
        if isinstance(exc, KeyboardInterrupt):
            raise
        objective = float("nan")
    _progress(sweep_dir)
    return objective


# -- the plan, progress and aggregation --------------------------------------------------------


def status(sweep_dir: Path) -> dict[str, Any]:
    """Points of the planned sweep that are done, failed and remaining (by their overrides)."""
    planned = (
        json.loads((sweep_dir / PLAN).read_text())["jobs"] if (sweep_dir / PLAN).is_file() else []
    )
    want = {tuple(j) for j in planned}
    done, failed = {}, {}
    folders = sorted(_points(sweep_dir).iterdir()) if _points(sweep_dir).is_dir() else []
    for folder in folders:
        f = folder / "point.json"
        if folder.name.startswith(".") or not f.is_file():  # a point still being written
            continue
        meta = json.loads(f.read_text())
        if tuple(meta["overrides"]) in want:
            done[tuple(meta["overrides"])] = meta["key"]
    for f in sorted(_errors(sweep_dir).glob("*.json")):
        meta = json.loads(f.read_text())
        o = tuple(meta["overrides"])
        if o in want and o not in done:
            failed[o] = meta["key"]
    return {
        "planned": len(want),
        "done": done,
        "failed": failed,
        "remaining": len(want) - len(done) - len(failed),
    }


def _progress(sweep_dir: Path) -> None:
    s = status(sweep_dir)
    if s["planned"]:
        log.info(
            "sweep: %d done, %d failed, %d remaining of %d points",
            len(s["done"]),
            len(s["failed"]),
            s["remaining"],
            s["planned"],
        )


def _value(text: str) -> Any:
    """An override's value as a column value: numbers as numbers, the rest as text."""
    import yaml

    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return v if isinstance(v, bool | int | float | str) or v is None else text


def aggregate(sweep_dir: Path) -> pd.DataFrame:
    """One table of every point of the planned sweep: override keys, then runs.parquet's columns.

    Rows are sorted by the overrides' values and the replication, so the table is the same
    whichever launcher ran the points and in whatever order they finished.
    """
    s = status(sweep_dir)
    frames, keys = [], []
    for overrides, key in s["done"].items():
        runs = pd.read_parquet(_points(sweep_dir) / key / "runs.parquet")
        params = {}
        for o in overrides:
            k, _, v = o.partition("=")
            params[k.lstrip("+~")] = _value(v)
        keys = keys or list(params)
        front = pd.DataFrame({k: [v] * len(runs) for k, v in params.items()})
        front.insert(0, "point", key)
        frames.append(pd.concat([front, runs.reset_index(drop=True)], axis=1))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    order = keys + ["scenario", "replication"]
    return table.sort_values(order, kind="stable", ignore_index=True)


class Bar:
    """A progress bar of points done, failed and remaining, polled from the sweep folder (so it
    follows points run in other processes or on other machines); only on a terminal."""

    def __init__(self, sweep_dir: Path) -> None:
        import threading

        from tqdm import tqdm

        s = status(sweep_dir)
        self.dir, self.stop = sweep_dir, threading.Event()
        self.bar = tqdm(total=s["planned"], desc="sweep points", unit="point", leave=True)
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while True:
            s = status(self.dir)
            self.bar.n = len(s["done"]) + len(s["failed"])
            self.bar.set_postfix(
                done=len(s["done"]),
                failed=len(s["failed"]),
                remaining=s["remaining"],
                refresh=False,
            )
            self.bar.refresh()
            if self.stop.wait(1.0):
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.bar.close()


def start(sweep_dir: Path, jobs: list[list[str]]) -> None:
    """Begin (or resume) a sweep of ``jobs``: drop leftovers of points killed while being
    written, save the plan, and say how many points are done, failed before, and to run."""
    if _points(sweep_dir).is_dir():
        for tmp in _points(sweep_dir).glob(".*"):
            shutil.rmtree(tmp, ignore_errors=True)
    files.write_json({"jobs": jobs}, sweep_dir / PLAN)
    s = status(sweep_dir)
    log.info(
        "sweep: %d points; %d already done (skipped), %d failed before (retried), %d to run",
        s["planned"],
        len(s["done"]),
        len(s["failed"]),
        s["planned"] - len(s["done"]),
    )


def finish(sweep_dir: Path) -> int:
    """Gather ``sweep.parquet`` from every done point of the plan, say what was done and what
    failed; returns the exit status (1 if a point failed)."""
    table = aggregate(sweep_dir)
    s = status(sweep_dir)
    if not table.empty:
        meta = {"points": len(s["done"]), "failed": len(s["failed"])}
        files.write_parquet(table, sweep_dir / "sweep.parquet", meta)
    print(
        f"\nsweep: {len(s['done'])} of {s['planned']} points done, {len(s['failed'])} failed;"
        f" wrote {sweep_dir / 'sweep.parquet'} ({len(table)} rows)"
    )
    for overrides, key in s["failed"].items():
        print(
            f"  failed: {' '.join(overrides)}  (see {_errors(sweep_dir) / key}.json)",
            file=sys.stderr,
        )
    if s["failed"]:
        print("  rerun the same command to retry the failed points", file=sys.stderr)
    return 1 if s["failed"] else 0
