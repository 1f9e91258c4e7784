"""Duration distributions: stays from uniforms by inversion, means, and equilibrium residual stays.

Inversion (``x = F^-1(u)``) ties each draw to one uniform, so a patient's stay depends only on the
uniform their own stream gave them (common random numbers across scenarios).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from flowsim.config import Dist


def lognormal_mu_sigma(d: Dist) -> tuple[float, float]:
    """``(mu, sigma)`` of the underlying normal: given, from median + mean, or from mean + sd.

    From median m and mean M: ``mu = ln m``, ``sigma = sqrt(2 (ln M - mu))`` (IPACS documentation).
    From mean M and sd S: ``sigma^2 = ln(1 + S^2/M^2)``, ``mu = ln M - sigma^2 / 2``.
    """
    if d.mu is not None:
        return float(d.mu), float(d.sigma)
    if d.median is not None:
        mu = float(np.log(d.median))
        return mu, float(np.sqrt(2.0 * (np.log(d.mean) - mu)))
    s2 = float(np.log1p((d.sd / d.mean) ** 2))
    return float(np.log(d.mean) - s2 / 2.0), float(np.sqrt(s2))


def gamma_shape_scale(d: Dist) -> tuple[float, float]:
    if d.shape is not None:
        return d.shape, d.scale
    return (d.mean / d.sd) ** 2, d.sd**2 / d.mean


def ppf(d: Dist, u: np.ndarray) -> np.ndarray:
    """Durations in days for uniforms ``u`` in [0, 1), capped at ``d.max``; the lowest
    ``d.zero_probability`` of uniforms give 0."""
    u = np.asarray(u, dtype=np.float64)
    z = d.zero_probability
    if z > 0:
        zero = u < z
        u = np.where(zero, 0.0, (u - z) / (1.0 - z))
        return np.where(zero, 0.0, _ppf(d, u))
    return _ppf(d, u)


def _ppf(d: Dist, u: np.ndarray) -> np.ndarray:
    if d.dist == "exponential":
        x = -d.mean * np.log1p(-u)
    elif d.dist == "lognormal":
        mu, sigma = lognormal_mu_sigma(d)
        x = np.exp(mu + sigma * special.ndtri(u))
    elif d.dist == "gamma":
        k, theta = gamma_shape_scale(d)
        x = theta * special.gammaincinv(k, u)
    elif d.dist == "weibull":
        x = d.scale * (-np.log1p(-u)) ** (1.0 / d.shape)
    elif d.dist == "fixed":
        x = np.full(u.shape, d.value)
    else:  # empirical: resample the observed values
        values = np.sort(np.asarray(d.values, dtype=np.float64))
        x = values[np.minimum((u * len(values)).astype(np.int64), len(values) - 1)]
    if d.max is not None:
        x = np.minimum(x, d.max)
    return x


def mean_days(d: Dist, n: int = 200_001) -> float:
    """Mean of the (capped) distribution; numerical on a fine grid of quantiles when capped."""
    if d.max is None and d.zero_probability == 0:
        if d.dist == "exponential":
            return d.mean
        if d.dist == "lognormal":
            mu, sigma = lognormal_mu_sigma(d)
            return float(np.exp(mu + sigma**2 / 2))
        if d.dist == "gamma":
            k, theta = gamma_shape_scale(d)
            return k * theta
        if d.dist == "weibull":
            return float(d.scale * special.gamma(1 + 1 / d.shape))
        if d.dist == "fixed":
            return d.value
        return float(np.mean(d.values))
    u = (np.arange(n) + 0.5) / n
    return float(ppf(d, u).mean())


def residual(d: Dist, u_pick: np.ndarray, u_frac: np.ndarray, u_pool: np.ndarray) -> np.ndarray:
    """Equilibrium residual stays: the time left for people found in service at a random moment.

    A person found in service is on a length-biased stay (density ``x f(x) / E[S]``) and has a
    uniform fraction of it left, so the residual has density ``(1 - F(x)) / E[S]``. We draw a pool
    of
    stays from ``u_pool``, pick from it with probability proportional to length (``u_pick``), and
    keep the fraction ``u_frac``. A uniform fraction of an ordinary (not length-biased) stay would
    understate residual stays: a known bias of simple snapshot starts.
    """
    pool = ppf(d, u_pool)
    weights = np.cumsum(pool)
    if weights[-1] <= 0:
        return np.zeros_like(u_frac)
    idx = np.searchsorted(weights, u_pick * weights[-1], side="right")
    return pool[np.minimum(idx, len(pool) - 1)] * u_frac
