"""Benchmark: a scenario comparison of the default system, 50 replications per arm, on all cores.

Run: ``python benchmarks/bench_comparison.py [--replications 50] [--scenario ibcf_reablement]``.
Target (issue 3): under 2 minutes on a 2-core machine. Reports wall-clock seconds of the whole
command (start-up, both arms, tables and files) as a user sees it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=50)
    ap.add_argument("--scenario", default="ibcf_reablement")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "flowsim.cli", f"scenario={args.scenario}",
               f"run.replications={args.replications}", f"run.jobs={args.jobs}",
               f"hydra.run.dir={Path(tmp) / 'out'}"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)
        seconds = time.perf_counter() - start
    print(json.dumps({"command": " ".join(cmd[2:-1]), "replications_per_arm": args.replications,
                      "wall_seconds": round(seconds, 1), "target_seconds": 120}, indent=2))


if __name__ == "__main__":
    main()
