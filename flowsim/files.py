"""Files with their provenance: every output is written atomically (a temporary file in the same
folder, then a rename, with the permissions the user's umask gives), parquet tables carry the
config hash, seed and versions in their metadata, and ``write_outputs`` writes a run's tables and
its manifest (the resolved config, its hash, the seed, the versions) as one step.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def config_hash(resolved: dict) -> str:
    """SHA-256 of the resolved config, keys sorted: the same config always has the same hash."""
    blob = json.dumps(resolved, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def versions() -> dict[str, str]:
    import platform

    import numba
    import simpy

    import flowsim

    return {
        "flowsim": flowsim.__version__,
        "python": platform.python_version(),
        "simpy": simpy.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
    }


def manifest(resolved: dict, seed: int) -> dict:
    return {
        "config": resolved,
        "config_hash": config_hash(resolved),
        "seed": seed,
        "versions": versions(),
    }


def usual_mode(path: str | Path, directory: bool = False) -> None:
    """Give a file or folder made by ``tempfile`` (private: 0600 / 0700) the permissions an
    ordinary one would have under the user's umask, so colleagues can read shared outputs."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` a temporary file in the same folder, then rename it to ``path``: never a
    half-written file, whatever stops the write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_parquet(df: pd.DataFrame, path: Path, meta: dict) -> None:
    """Parquet with its provenance (``flowsim`` key: config hash, seed, versions) in metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    extra = {b"flowsim": json.dumps(meta, default=str).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_json(obj: dict, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
            fh.write("\n")

    write_atomic(path, write)


def write_outputs(
    folder: Path, tables: dict[str, pd.DataFrame | None], resolved: dict, seed: int, **extra
) -> list[str]:
    """Write a run's tables into ``folder`` and its manifest last: ``name.parquet`` with the
    provenance in its metadata, ``name.csv`` plain; ``None`` tables are skipped. ``extra`` joins
    the manifest (e.g. ``window``). Returns the file names written, the manifest last."""
    meta = {**manifest(resolved, seed), **extra}
    provenance = {k: meta[k] for k in ("config_hash", "seed", "versions")}
    written = []
    for name, table in tables.items():
        if table is None:
            continue
        if name.endswith(".parquet"):
            write_parquet(table, folder / name, provenance)
        else:
            write_csv(table, folder / name)
        written.append(name)
    write_json(meta, folder / "manifest.json")
    return [*written, "manifest.json"]
