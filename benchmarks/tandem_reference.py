"""The tandem discharge network (configs/system/tandem.yaml): its parameters, shared by every
implementation in benchmarks/, and its exact Erlang C values.

Poisson arrivals (RATE a day) into acute (ACUTE_BEDS, lognormal stay of mean ACUTE_MEAN and sd
ACUTE_SD days). On leaving acute a patient needs reablement with probability P_REABLEMENT,
a care home with P_CARE_HOME, else goes home. Someone who needs a place keeps the acute bed until
one is free (first come, first served). Reablement: REABLEMENT_PLACES places, exponential stay of
mean REABLEMENT_MEAN; care homes: CARE_HOME_BEDS, exponential, mean CARE_HOME_MEAN. Acute never
fills, so each downstream service is an M/M/c queue whose line waits in acute beds.

``scale`` multiplies the arrival rate and every capacity (utilisation stays at 0.95).
"""

from __future__ import annotations

import math

RATE = 40.0
ACUTE_BEDS = 600
ACUTE_MEAN, ACUTE_SD = 6.0, 5.0
P_REABLEMENT, P_CARE_HOME = 0.25, 0.15
REABLEMENT_PLACES, REABLEMENT_MEAN = 60, 5.7
CARE_HOME_BEDS, CARE_HOME_MEAN = 300, 47.5
WARMUP_DAYS, MEASURED_DAYS = 500.0, 365.0


def lognormal_mu_sigma(mean: float = ACUTE_MEAN, sd: float = ACUTE_SD) -> tuple[float, float]:
    """Parameters of the normal underlying a lognormal with this mean and sd."""
    sigma2 = math.log(1.0 + (sd / mean) ** 2)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load a (stable Erlang B recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def exact(scale: float = 1.0) -> dict[str, float]:
    """Erlang C values: mean wait of each downstream queue, the mean delay of everyone who needs
    a place, the mean number of delayed patients in acute beds, the mean acute occupancy."""
    out = {}
    total_rate, delayed = 0.0, 0.0
    for name, p, c, mean in (
        ("reablement", P_REABLEMENT, REABLEMENT_PLACES, REABLEMENT_MEAN),
        ("care_home", P_CARE_HOME, CARE_HOME_BEDS, CARE_HOME_MEAN),
    ):
        lam, cc = RATE * scale * p, int(round(c * scale))
        wq = erlang_c(cc, lam * mean) / (cc / mean - lam)
        out[f"mean_delay_{name}_days"] = wq
        total_rate += lam
        delayed += lam * wq
    out["mean_delay_days"] = delayed / total_rate
    out["delayed_beds_mean"] = delayed
    out["acute_occupancy_mean"] = RATE * scale * ACUTE_MEAN + delayed
    return out


if __name__ == "__main__":
    for k, v in exact().items():
        print(f"{k:28s} {v:8.3f}")
