"""The Numba kernels (flowsim/kernels.py) against slow, obviously correct Python, on the same
uniforms: thinning of non-stationary arrivals and routing by group. The same file runs once more
with ``NUMBA_DISABLE_JIT=1`` (the kernels as plain Python), so what Numba compiles and what the
Python says are the same function (and coverage tools can see inside the kernels)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowsim import kernels


def thin_reference(rates_by_day: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """Lewis and Shedler's thinning, written out: the same draws in the same order as
    ``kernels.arrival_times``, one candidate at a time."""
    peak = float(rates_by_day.max())
    horizon = float(rates_by_day.size)
    n = gen.poisson(peak * horizon)
    candidates = sorted(gen.random(n) * horizon)
    accept = gen.random(n)
    kept = []
    for t, u in zip(candidates, accept):
        day = min(int(t), rates_by_day.size - 1)
        if u * peak < rates_by_day[day]:
            kept.append(t)
    return np.array(kept)


def test_thinning_equals_the_reference():
    rates = np.array([0.0, 5.0, 12.0, 3.5, 12.0, 0.5, 7.0] * 8)
    got = kernels.arrival_times(rates, np.random.default_rng(5))
    expected = thin_reference(rates, np.random.default_rng(5))
    assert np.array_equal(got, expected)
    assert np.all(np.diff(got) >= 0)


def test_thinning_gives_each_day_its_rate():
    """Counts per day are Poisson with the day's rate: over 400 repeats the mean count of each
    day is within 4 standard errors (sqrt(rate / 400)) of its rate; a day of rate 0 has none."""
    rates = np.array([0.0, 2.0, 10.0, 25.0])
    gen = np.random.default_rng(6)
    counts = np.array([np.bincount(kernels.arrival_times(rates, gen).astype(int), minlength=4)
                       for _ in range(400)])  # fmt: skip
    assert counts[:, 0].sum() == 0
    se = np.sqrt(rates[1:] / 400)
    assert np.all(np.abs(counts[:, 1:].mean(axis=0) - rates[1:]) < 4 * se)


def test_routing_equals_the_reference():
    gen = np.random.default_rng(7)
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.25, 0.75]])
    u = gen.random(5000)
    rows = gen.integers(0, 3, 5000)
    got = kernels.categorical(u, rows, p)
    cumulative = np.cumsum(p, axis=1)
    expected = np.array([min(int(np.searchsorted(cumulative[r], x, side="right")), 2)
                         for x, r in zip(u, rows)])  # fmt: skip
    assert np.array_equal(got, expected)
    assert not np.any(got[rows == 1] != 0)  # a probability of 0 is never drawn


def test_routing_rejects_a_table_that_is_not_probabilities():
    with pytest.raises(ValueError, match="summing to 1"):
        kernels.categorical(np.array([0.5]), np.array([0]), np.array([[0.5, 0.6]]))


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="already without JIT")
def test_the_same_tests_pass_without_the_jit():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__))],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed, 1 skipped" in proc.stdout, proc.stdout
