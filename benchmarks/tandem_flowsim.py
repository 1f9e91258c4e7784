"""The tandem discharge network run by flowsim itself (configs/system/tandem.yaml), with the same
``run()`` interface and metrics as the other implementations in benchmarks/.

Run: ``python -m benchmarks.tandem_flowsim`` from the repository root.
"""

from __future__ import annotations

import copy
import time
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from benchmarks.tandem_reference import MEASURED_DAYS, WARMUP_DAYS, exact
from flowsim import compiled, model
from flowsim.config import validate

ROOT = Path(__file__).resolve().parent.parent


@cache
def _system() -> dict:
    return yaml.safe_load((ROOT / "configs" / "system" / "tandem.yaml").read_text())


@cache
def config(scale: float = 1.0, warmup_days: float = WARMUP_DAYS, measured_days=MEASURED_DAYS):
    """The validated tandem config with the arrival rate and every capacity times ``scale``
    (made once: the other implementations take their parameters as constants, so validating a
    config is not counted in a replication's time)."""
    system = copy.deepcopy(_system())
    system["arrivals"]["emergency"]["rate_per_day"] *= scale
    for svc in system["services"].values():
        svc["capacity"] = int(round(svc["capacity"] * scale))
    run = {"warmup_days": warmup_days, "horizon_days": warmup_days + measured_days}
    return validate({"system": system, "run": run})


def _overlap(starts: np.ndarray, ends: np.ndarray, a: float, b: float) -> float:
    """Total time the intervals [start, end) (an open end: still there) spend inside [a, b)."""
    ends = np.where(np.isnan(ends), b, ends)
    return float(np.sum(np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0.0, None)))


def run(
    seed: int,
    scale: float = 1.0,
    warmup_days: float = WARMUP_DAYS,
    measured_days: float = MEASURED_DAYS,
    engine: str = "simpy",
) -> dict:
    """One replication; metrics over the measured window as in tandem_simpy.run.

    ``engine``: ``simpy`` (flowsim's lean SimPy engine) or ``compiled`` (its Numba event loop).
    ``events``: arrivals + acute stay ends + downstream stay ends before the horizon.
    """
    cfg = config(scale, warmup_days, measured_days)
    horizon = warmup_days + measured_days
    ev = (compiled if engine == "compiled" else model).simulate(cfg.system, seed, 0, horizon)
    v, w = ev.visits, ev.waits
    services = ev.layout.services
    out: dict = {}
    delays = []
    for name in ("reablement", "care_home"):
        code = services.index(name)
        moved = (v["service"] == 0) & (v["outcome"] == code)
        moved &= (v["leave"] >= warmup_days) & (v["leave"] < horizon)
        d = v["leave"][moved] - v["ready"][moved]
        out[f"mean_delay_{name}_days"] = float(d.mean()) if d.size else float("nan")
        delays.append(d)
    both = np.concatenate(delays)
    out["mean_delay_days"] = float(both.mean()) if both.size else float("nan")
    held = w["place"] == 0
    out["delayed_beds_mean"] = (
        _overlap(w["start"][held], w["end"][held], warmup_days, horizon) / measured_days
    )
    acute = v["service"] == 0
    out["acute_occupancy_mean"] = (
        _overlap(v["enter"][acute], v["leave"][acute], warmup_days, horizon) / measured_days
    )
    out["patients"] = int(np.sum(acute))
    out["events"] = int(np.sum(acute) + np.sum(~np.isnan(v["leave"])))
    return out


if __name__ == "__main__":
    run(0, measured_days=10.0)  # Numba's cache and imports, not timed
    started = time.perf_counter()
    result = run(0)
    seconds = time.perf_counter() - started
    ref = exact()
    for k, value in result.items():
        print(f"{k:28s} {value:12.3f} {ref.get(k, float('nan')):12.3f}")
    print(f"{seconds:.3f} s a replication")


def run_compiled(
    seed: int,
    scale: float = 1.0,
    warmup_days: float = WARMUP_DAYS,
    measured_days: float = MEASURED_DAYS,
) -> dict:
    """``run`` with the compiled engine (``run.engine=compiled``)."""
    return run(seed, scale, warmup_days, measured_days, engine="compiled")
