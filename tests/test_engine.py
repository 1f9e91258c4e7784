"""The lean engine (flowsim/engine.py) against plain SimPy, and its pool's properties.

engine.py drives SimPy's ``Environment`` through its private heap (``_queue``, ``_now``, ``_eid``);
pyproject pins the SimPy minor versions this was tested with. Here the same small queue run with
``simpy.Resource`` and with the lean ``Pool``/``Process``/``run_until`` gives the same start times,
to the bit (continuous random times: no ties), and Hypothesis checks the pool's invariants on
adversarial inputs (ties, capacity cuts, closed doors): first come first served, no one served
twice or lost, no place idle while someone waits, never more taken than the capacity in force.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from flowsim.engine import Pool, Process, at, run_until


def plain_simpy(arrivals, stays, capacity: int) -> np.ndarray:
    """Start times with simpy.Resource and one process per patient (the idiomatic way)."""
    env = simpy.Environment()
    beds = simpy.Resource(env, capacity)
    starts = np.full(len(arrivals), math.nan)

    def patient(i):
        yield env.timeout(arrivals[i])
        with beds.request() as req:
            yield req
            starts[i] = env.now
            yield env.timeout(stays[i])

    for i in range(len(arrivals)):
        env.process(patient(i))
    env.run()
    return starts


def lean(arrivals, stays, capacity: int, known_release: bool, schedule=(), closed=()):
    """Start times with the lean engine: a place's release booked when it is taken
    (``hold_until``) or by an event (``at`` then ``release``); optional capacity steps
    ``(t, capacity)`` and closed spells ``(from, to)``."""
    env = simpy.Environment()
    pool = Pool(env, capacity)
    starts = np.full(len(arrivals), math.nan)

    def patient(i):
        ev = pool.request()
        if ev is not None:
            yield ev
        starts[i] = env.now
        if known_release:
            pool.hold_until(env.now + stays[i])
            return
        yield at(env, env.now + stays[i])
        pool.release()

    def steps():
        for t, c in schedule:
            yield at(env, t)
            pool.set_capacity(c)

    def doors():  # one process for the door, as the model has one per service
        for a, b in closed:
            yield at(env, a)
            pool.set_open(False)
            yield at(env, b)
            pool.set_open(True)

    Process(env, steps())
    Process(env, doors())
    run_until(env, math.inf, list(arrivals), lambda k: Process(env, patient(k), now=True))
    return starts


@pytest.mark.parametrize("capacity", [1, 3, 8])
@pytest.mark.parametrize("known_release", [True, False])
def test_lean_engine_gives_plain_simpys_start_times(capacity, known_release):
    rng = np.random.default_rng(capacity)
    arrivals = np.cumsum(rng.exponential(1.0, 400)).tolist()
    stays = rng.exponential(0.9 * capacity, 400).tolist()  # utilisation 0.9: queues form
    expected = plain_simpy(arrivals, stays, capacity)
    got = lean(arrivals, stays, capacity, known_release)
    assert np.array_equal(got, expected)
    assert np.any(got > np.asarray(arrivals))  # some waited: the queue was exercised


def test_the_simpy_internals_the_engine_uses_are_there():
    env = simpy.Environment()
    assert isinstance(env._queue, list) and env._now == 0
    assert isinstance(next(env._eid), int)
    assert simpy.__version__.split(".")[:2] == ["4", "1"]  # the versions pyproject allows


# -- properties of the pool, on adversarial inputs ---------------------------------------------

times = st.integers(min_value=0, max_value=40).map(lambda k: k / 4)  # quarters: many ties


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(times, min_size=1, max_size=40),
    stays=st.lists(times, min_size=40, max_size=40),
    capacity=st.integers(1, 4),
    schedule=st.lists(st.tuples(times, st.integers(0, 5)), max_size=4),
    closed=st.lists(st.tuples(times, times), max_size=2),
    known_release=st.booleans(),
)
def test_pool_is_fair_conserving_and_within_capacity(
    gaps, stays, capacity, schedule, closed, known_release
):
    arrivals = np.cumsum(gaps).tolist()
    n = len(arrivals)
    stays = stays[:n]
    schedule = sorted(schedule)
    spells, end = [], 0.0
    for gap, length in closed:  # disjoint spells, each of which ends (as weekly door schedules)
        spells.append((end + gap, end + gap + length + 0.25))
        end = spells[-1][1]
    closed = spells
    if all(c == 0 for _, c in schedule[-1:]) and schedule:
        schedule.append((schedule[-1][0] + 1.0, 1))  # places come back: everyone is served
    starts = lean(arrivals, stays, capacity, known_release, schedule, closed)

    # at an instant where the capacity changes or the door closes, events at that same time may
    # come in either order (ties): a start then may see the old or the new state
    def capacity_at(t):
        before = after = capacity
        for s, cap in schedule:
            if s < t:
                before = cap
            if s <= t:
                after = cap
        return max(before, after)

    def is_open(t):
        return not any(a < t < b for a, b in closed)

    # conservation: everyone is served once, never before they arrive
    assert not np.isnan(starts).any()
    assert np.all(starts >= np.asarray(arrivals))
    # first come, first served: start times follow arrival order
    assert np.all(np.diff(starts) >= 0)
    ends = starts + np.asarray(stays)
    for i, s in enumerate(starts):
        # taken only through an open door, within the capacity in force
        assert is_open(s)
        in_service = np.sum((starts <= s) & (ends > s))
        assert in_service <= max(capacity_at(s), 0)
        # no place idle while someone waits: a wait ends when a place frees up, the capacity
        # grows, or the door opens, never at another time
        if s > arrivals[i]:
            freed = np.any(np.isclose(ends, s)) or any(t == s for t, _ in schedule)
            opened = any(b == s for _, b in closed)
            earlier = i > 0 and starts[i - 1] == s  # served in the same instant as the one before
            assert freed or opened or earlier, (i, s)
