"""Services' roles (``config.Service.role``, issue 12): what a service does comes from its role;
its name is only a label.

The default system with every service renamed (roles given) must give the same KPIs, daily
series and flows, bit for bit, on both engines, once the renamed columns and labels are mapped
back. A service's name also names its random streams (``<service>.stay``, ``start.<service>...``),
so renaming it changes its draws as a new seed would; the comparison therefore maps each renamed
stream back to its old name, which gives both systems the same random numbers. Then any KPI that
differs is one that a name, not a role, decided.
"""

from __future__ import annotations

import copy
import zlib

import pandas as pd
import pytest
import yaml
from test_compiled import ROOT, config

from flowsim import compiled, results, runner, streams
from flowsim.config import ConfigError, validate
from flowsim.tally import Tally, replay

RENAMED = {
    "acute": "hospital",
    "assessment": "discharge_team",
    "reablement": "rehab_at_home",
    "home_care": "domiciliary_care",
    "step_down": "community_beds",
    "care_home": "hospice",
}
HORIZON, WARMUP = 300.0, 60.0  # long enough for 91-day home checks to resolve
ENGINES = ("simpy", "compiled")


def default_raw() -> dict:
    return yaml.safe_load((ROOT / "configs" / "system" / "default.yaml").read_text())


def rename(raw: dict, names: dict[str, str]) -> dict:
    """The system with its services renamed, each keeping its role (wherever a service is named:
    the services, their routing and overflow, the pathways' and arrivals' destinations)."""
    out = copy.deepcopy(raw)
    n = lambda x: names.get(x, x)  # noqa: E731
    table = lambda t: {n(k): v for k, v in t.items()}  # noqa: E731
    services = {}
    for s, svc in out["services"].items():
        svc["role"] = svc.get("role", s)
        svc["next"] = table(svc.get("next", {}))
        svc["next_by_group"] = {g: table(t) for g, t in svc.get("next_by_group", {}).items()}
        svc["when_full"] = n(svc.get("when_full", "wait"))
        services[n(s)] = svc
    out["services"] = services
    for pw in out["discharge"]["pathways"].values():
        pw["to"] = n(pw["to"])
        pw["to_by_group"] = {g: n(t) for g, t in pw.get("to_by_group", {}).items()}
    for arrival in out["arrivals"].values():
        arrival["to"] = n(arrival["to"])
    return out


def old_name(label: str, names: dict[str, str]) -> str:
    back = {new: old for old, new in names.items()}
    for new in sorted(back, key=len, reverse=True):
        label = label.replace(new, back[new])
    return label


def same_streams(monkeypatch, names: dict[str, str]) -> None:
    """Streams named after a renamed service draw what the old name drew."""
    back = {new: old for old, new in names.items()}
    monkeypatch.setattr(
        streams,
        "stream_key",
        lambda name: zlib.crc32(".".join(back.get(p, p) for p in name.split(".")).encode()),
    )


def tables(raw: dict, engine: str) -> runner.Outcome:
    cfg = config(raw, HORIZON, WARMUP, replications=2, engine=engine)
    out = runner.run([("baseline", cfg)], jobs=1)
    assert not out.errors, out.errors
    return out


def mapped_back(out: runner.Outcome, names: dict[str, str]) -> dict[str, pd.DataFrame]:
    runs = out.runs.rename(columns=lambda c: old_name(c, names))
    daily = out.daily.rename(columns=lambda c: old_name(c, names))
    daily["service"] = [old_name(s, names) for s in daily["service"]]
    flows = out.flows.copy()
    for col in ("source", "target"):
        flows[col] = [old_name(s, names) for s in flows[col]]
    return {"runs": runs, "daily": daily, "flows": flows}


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for table in a:
        x, y = a[table], b[table]
        assert list(x.columns) == list(y.columns), table
        pd.testing.assert_frame_equal(
            x.reset_index(drop=True), y.reset_index(drop=True), check_exact=True, obj=table
        )


@pytest.mark.parametrize("engine", ENGINES)
def test_renamed_services_give_the_same_results(engine, monkeypatch):
    """Every service renamed (a care home called ``hospice``): the same KPIs (those that embed
    a name, mapped back), daily series and flows as the default system."""
    base = mapped_back(tables(default_raw(), engine), {})
    same_streams(monkeypatch, RENAMED)
    renamed = tables(rename(default_raw(), RENAMED), engine)
    assert "delayed_bed_days_for_rehab_at_home" in renamed.runs
    assert set(renamed.daily["service"]) >= {"hospital", "hospice"}
    assert_same(base, mapped_back(renamed, RENAMED))
    kpis = renamed.runs
    assert (kpis["care_home_admissions"] > 0).all()  # entries to the hospice, a care_home role
    assert kpis["home_at_91_days_rate"].between(0, 1).all()


def test_role_not_name_decides_who_is_home():
    """``home_at_91_days_rate`` counts people by the role of the place they are in: a care home
    called ``hospice`` (role care_home, or other) is not home; the same stays tallied with the
    hospice given role home_care would count its people as home. Only a care_home role counts
    ``care_home_admissions``. (One run's stays, tallied under each role.)"""
    cfg = config(rename(default_raw(), {"care_home": "hospice"}), HORIZON, WARMUP)
    ev = compiled.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days)

    def tally(role: str) -> Tally:
        lay = copy.copy(ev.layout)
        lay.roles = [role if s == "hospice" else r for s, r in zip(lay.services, lay.roles)]
        t = Tally(lay, ev.horizon_days, ev.n_initial, ev.capacity_steps, results.measure(cfg))
        return replay(t, ev.visits, ev.waits, ev.turned)

    got = {role: tally(role) for role in ("care_home", "other", "home_care")}
    kpis = results.kpis(ev, cfg)
    assert got["care_home"].home_at_91_rate() == kpis["home_at_91_days_rate"]
    assert got["other"].home_at_91_rate() == got["care_home"].home_at_91_rate()
    assert got["home_care"].home_at_91_rate() > got["care_home"].home_at_91_rate()
    admitted = {role: t.counts["care_home_admissions"] for role, t in got.items()}
    assert admitted["care_home"] == kpis["care_home_admissions"] > 0
    assert admitted["other"] == admitted["home_care"] == 0


def test_canonical_names_imply_their_roles():
    """A service named after a role may leave the role out; the validated config states it."""
    raw = default_raw()
    for svc in raw["services"].values():
        svc.pop("role")
    cfg = validate({"system": raw})
    roles = {s: svc.role for s, svc in cfg.system.services.items()}
    assert roles == {s: s for s in raw["services"]}
    assert cfg.system.acute == "acute" and cfg.system.assessment == "assessment"


def _reject(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate({"system": raw})
    return str(err.value)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda s: s["care_home"].update(role="hospice"), "system.services.care_home.role",
         "Input should be"),
        (lambda s: s.update(hospice=s.pop("care_home")) or s["hospice"].pop("role"),
         "system.services.hospice.role",
         "give the service's role"),
        (lambda s: s["step_down"].update(role="acute"), "system.services.step_down.role",
         "only one service may be acute"),
        (lambda s: s["step_down"].update(role="assessment"), "system.services.step_down.role",
         "only one service may be assessment"),
        (lambda s: s["acute"].update(role="other"), "system.services", "acute service is required"),
    ],
)  # fmt: skip
def test_bad_roles_are_rejected_naming_the_field(change, field, words):
    raw = default_raw()
    change(raw["services"])
    message = _reject(raw)
    assert field in message and words in message, message
