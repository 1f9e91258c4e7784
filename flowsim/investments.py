"""Investments resolved: what each investment of a scenario buys, over which days, paid by whom.

A scenario's ``investments`` (``config.Investment``) are what a user writes: a lever, an amount
(``add``, ``budget_gbp`` or ``multiply``), funded days counted from the end of the warm-up, a
funder and unit costs. ``resolve`` turns them, for one run's warm-up and horizon, into ``Bought``
records: whole units and absolute simulation days. Everything downstream reads those records:

- ``scenarios.apply`` adds the places a capacity investment buys to the service's capacity
  schedule (``add_window``), which is what the engines run;
- ``results`` costs the investments (``costs``) in their funder's organisation
  (``organisation``), and costs a service only for its own places (``own_places``), so that
  places bought by an investment are paid once, by the investment.

Days: an investment with ``start_day: 0`` and no ``end_day`` is permanent, in place from the start
of the run, warm-up included; costs count over the measured window only. A capacity investment
with ``start_day``/``end_day`` adds places for that window only: when the money stops the places
go, and people already in them finish their stay. Any other numeric lever changes for the whole
run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowsim.config import Config, ConfigError, Scenario

FUNDER_ORGANISATION = {
    "ibcf": "social_care",
    "council": "social_care",
    "social_care": "social_care",
    "bcf": "social_care",
    "nhs": "nhs",
    "icb": "nhs",
    "trust": "nhs",
}
"""Which organisation's costs an investment is counted in (iBCF is a grant to councils)."""


def organisation(funder: str, organisations: dict | None = None) -> str:
    """The sector whose costs a funder's money is counted in: ``nhs``, ``social_care`` or
    ``other``. A funder may be one of the system's own organisations (``System.organisations``):
    a council's money is social care's, a trust's the NHS's."""
    org = (organisations or {}).get(funder)
    if org is not None:
        return "nhs" if org.kind == "trust" else "social_care"
    return FUNDER_ORGANISATION.get(funder, "other")


def capacity_service(lever: str) -> str | None:
    """The service whose capacity a lever moves (``services.<name>.capacity``), else None."""
    parts = lever.split(".")
    if len(parts) == 3 and parts[0] == "services" and parts[2] == "capacity":
        return parts[1]
    return None


@dataclass(frozen=True)
class Bought:
    """One investment resolved for a run: ``units`` bought (places for a capacity lever, else
    what ``add`` adds; 0 for ``multiply``) over simulation days ``[start, end)``, paid by
    ``funder`` at ``cost_gbp_per_unit_year`` a unit plus ``cost_gbp_per_year``."""

    lever: str
    units: float
    start: float
    end: float
    funder: str
    cost_gbp_per_unit_year: float
    cost_gbp_per_year: float

    @property
    def service(self) -> str | None:
        """The service whose places this buys, or None for another lever."""
        return capacity_service(self.lever)

    @property
    def organisation(self) -> str:
        return organisation(self.funder)

    def days(self, a: float, b: float) -> float:
        """Funded days within ``[a, b)``."""
        return max(0.0, min(b, self.end) - max(a, self.start))

    def cost(self, a: float, b: float) -> float:
        """What the funder pays over ``[a, b)``: units x days x unit cost / 365, plus the flat
        yearly cost x days / 365."""
        yearly = abs(self.units) * self.cost_gbp_per_unit_year + self.cost_gbp_per_year
        return yearly * (self.days(a, b) / 365.0)


def units(inv, where: str, window_days: float) -> float:
    """Units an investment buys: the fixed ``add``, or the whole units ``budget_gbp`` pays for
    over its funded days (``window_days`` when it has no ``end_day``); 0 for ``multiply``."""
    if inv.add is not None:
        return float(inv.add)
    if inv.multiply is not None:
        return 0.0  # a multiplied parameter buys no units; its cost is cost_gbp_per_year
    if inv.cost_gbp_per_unit_year <= 0:
        raise ConfigError(f"{where}.cost_gbp_per_unit_year: a budget needs a unit cost > 0")
    days = (inv.end_day if inv.end_day is not None else window_days) - inv.start_day
    return float(math.floor(inv.budget_gbp / (inv.cost_gbp_per_unit_year * days / 365.0)))


def resolve(scenario: Scenario, warmup_days: float, horizon_days: float) -> tuple[Bought, ...]:
    """The ``Bought`` record of each of the scenario's investments, in order, for a run with this
    warm-up and horizon (simulation days)."""
    W, H = float(warmup_days), float(horizon_days)
    out = []
    for k, inv in enumerate(scenario.investments):
        where = f"scenario.investments.{k}"
        permanent = inv.start_day == 0 and inv.end_day is None
        start = 0.0 if permanent else W + inv.start_day
        end = min(H, W + inv.end_day) if inv.end_day is not None else H
        if start >= H:
            raise ConfigError(f"{where}.start_day: starts after the horizon")
        out.append(
            Bought(
                lever=inv.lever,
                units=units(inv, where, H - W),
                start=start,
                end=end,
                funder=inv.funder,
                cost_gbp_per_unit_year=inv.cost_gbp_per_unit_year,
                cost_gbp_per_year=inv.cost_gbp_per_year,
            )
        )
    return tuple(out)


def of(config: Config) -> tuple[Bought, ...]:
    """What the investments of a config's scenario buy over its run."""
    return resolve(config.scenario, config.run.warmup_days, config.run.horizon_days)


def by_service(bought: tuple[Bought, ...]) -> dict[str, list[Bought]]:
    """The capacity investments, by the service whose places they buy."""
    out: dict[str, list[Bought]] = {}
    for b in bought:
        if b.service is not None:
            out.setdefault(b.service, []).append(b)
    return out


def add_window(
    steps: list[tuple[float, int]], units: float, start: float, end: float
) -> list[tuple[float, int]]:
    """A capacity schedule (``[(from_day, places), ...]``) with ``units`` more places on
    ``[start, end)`` (never below 0)."""
    add = int(round(units))
    points = sorted({d for d, _ in steps} | {start, end})
    out: list[tuple[float, int]] = []
    for d in points:
        base = [c for day, c in steps if day <= d][-1]
        cap = max(0, base + add) if start <= d < end else base
        if not out or out[-1][1] != cap:
            out.append((float(d), int(cap)))
    return out


def own_places(steps: list[tuple[float, int]], bought: list[Bought]) -> list[tuple[float, int]]:
    """A service's own places: its capacity schedule in force (``steps``, investments included)
    without the places these investments bought, never below 0. Its capacity cost is that of
    these places; the bought ones are paid by the investments."""
    out = list(steps)
    for b in bought:
        out = add_window(out, -b.units, b.start, b.end)
    return out


def costs(bought: tuple[Bought, ...], a: float, b: float) -> dict[str, float]:
    """What each funder pays over ``[a, b)``."""
    out: dict[str, float] = {}
    for x in bought:
        out[x.funder] = out.get(x.funder, 0.0) + x.cost(a, b)
    return out
