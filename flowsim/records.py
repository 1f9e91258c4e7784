"""The stays and waits a SimPy run is holding: rows a process may still change, in Python lists,
and finished ones, in NumPy columns, so that at each checkpoint the run can hand them to its
``Tally`` and let go of those it no longer needs.

A row is a Python list (indexing and setting a list item is what a process does cheaply). A stay
is finished once its ``leave`` is set, a wait once its ``end`` is: nothing changes them after that,
though the time may still lie ahead (a release booked in advance). Finished rows move to columns,
which cost no Python work at the next checkpoints; rows that are finished and in the past are
forgotten (or kept aside, for a patient log). Every row is numbered in the order it was made, and
the columns are always handed over in that order: the tally then sums them in the same order
whether a run forgets rows or keeps them all.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from flowsim.fields import TIMES, TURNED_FIELDS, VISIT_FIELDS, WAIT_FIELDS  # noqa: F401 (records.X)
from flowsim.patients import OPEN, Layout
from flowsim.plan import Plan
from flowsim.tally import Tally


@dataclass
class Events:
    """What one replication recorded: stays, waits and the capacity in force."""

    visits: dict[str, np.ndarray]
    waits: dict[str, np.ndarray]
    capacity_steps: list[list[tuple[float, int]]]
    horizon_days: float
    layout: Layout
    n_initial: int
    """Episodes numbered below this were already in care at day 0 (not admissions)."""
    tally: Tally | None = None
    """The run's sums, when they were tallied while it ran (``visits`` and ``waits`` then hold
    only the records still open at the horizon, unless it was asked to keep them all)."""
    turned: dict[str, np.ndarray] = field(default_factory=lambda: no_turned())
    """People turned away by a full service (``TURNED_FIELDS``; none in a tallied run's events
    unless it was asked to keep every record)."""


def no_turned() -> dict[str, np.ndarray]:
    """Empty turn-away columns."""
    return rows_to_columns([], TURNED_FIELDS)


def close(
    visits: dict, waits: dict, plan: Plan, n_initial: int, turned: dict | None = None
) -> Events:
    """The events of a finished run. Stays and waits are written ahead of time (a stay's end is
    known when it starts): what lies beyond the horizon has not happened, so it is cleared."""
    H = plan.horizon
    late = visits["leave"] > H
    visits["leave"][late] = math.nan
    visits["outcome"][late] = OPEN
    visits["ready"][visits["ready"] > H] = math.nan
    keep = ~(waits["start"] > H)
    waits = {k: v[keep] for k, v in waits.items()}
    waits["end"][waits["end"] > H] = math.nan
    return Events(
        visits=visits,
        waits=waits,
        capacity_steps=plan.capacity_steps,
        horizon_days=H,
        layout=plan.layout,
        n_initial=n_initial,
        turned=no_turned() if turned is None else turned,
    )


def columns(arr: np.ndarray, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A float64 table (one column per field) as named columns; codes as int64."""
    return {
        f: arr[:, j] if f in TIMES else arr[:, j].astype(np.int64) for j, f in enumerate(fields)
    }


def rows_to_columns(rows: list[list], fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Rows to named columns; times as float64, codes as int64."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), np.float64, len(rows) * len(fields))
    return columns(flat.reshape(len(rows), len(fields)), fields)


class Held:
    """One kind of record (stays or waits) held by a run; ``rows`` is the list processes append
    to. ``done`` names the field that, once set, finishes a row."""

    def __init__(self, fields: tuple[str, ...], done: str, keep: bool, rows: list[list]) -> None:
        self.fields, self.done, self.keep = fields, done, keep
        self.rows = rows
        self._row_seq = np.empty(0, dtype=np.int64)  # numbers of the rows kept in ``rows``
        self._made = 0
        self._finished = rows_to_columns([], fields)  # finished, not yet in the past
        self._finished_seq = np.empty(0, dtype=np.int64)
        self._kept: list[tuple[dict, np.ndarray]] = []  # forgotten, kept for the log
        self._pos = np.empty(0, dtype=np.int64)
        self.most = 0
        """The most records held at a checkpoint so far."""

    def now(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every record held, as columns in the order they were made, with their numbers."""
        new = len(self.rows) - len(self._row_seq)
        row_seq = np.concatenate([self._row_seq, np.arange(self._made, self._made + new)])
        self._made += new
        self._row_seq = row_seq
        cols = rows_to_columns(self.rows, self.fields)
        seq = np.concatenate([self._finished_seq, row_seq])
        order = np.argsort(seq, kind="stable")
        where = np.empty_like(order)
        where[order] = np.arange(order.size)
        self._pos = where[len(self._finished_seq) :]  # where each row went
        merged = {f: np.concatenate([self._finished[f], cols[f]])[order] for f in self.fields}
        self.most = max(self.most, order.size)
        return merged, seq[order]

    def forget(self, cols: dict, seq: np.ndarray, needed: np.ndarray) -> None:
        """After ``now()`` and a fold: keep what is ``needed`` (finished rows as columns)."""
        if self.keep:
            self._kept.append(({f: c[~needed] for f, c in cols.items()}, seq[~needed]))
        finished = needed & ~np.isnan(cols[self.done])
        self._finished = {f: c[finished] for f, c in cols.items()}
        self._finished_seq = seq[finished]
        row_needed = (needed & np.isnan(cols[self.done]))[self._pos]
        self.rows[:] = itertools.compress(self.rows, row_needed.tolist())  # in place: processes
        self._row_seq = self._row_seq[row_needed]  # append to this very list

    def everything(self, cols: dict, seq: np.ndarray) -> dict[str, np.ndarray]:
        """The last records (``cols``) with those forgotten but kept, in the order they were
        made."""
        parts = [*self._kept, (cols, seq)]
        order = np.argsort(np.concatenate([s for _, s in parts]), kind="stable")
        return {f: np.concatenate([c[f] for c, _ in parts])[order] for f in self.fields}
