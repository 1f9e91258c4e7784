"""Config composition and validation, duration distributions and named random streams.

Bad input must be rejected before any run with a message that names the field (dotted path) and
the rule (DESIGN.md section 8). Distributions are checked against closed-form means computed here
from the parameters, not against numbers copied from the code.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from pathlib import Path

import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import special

from flowsim import distributions
from flowsim.config import Config, ConfigError, Dist, validate
from flowsim.streams import Streams

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
SYSTEMS = sorted(p.stem for p in (CONFIG_DIR / "system").glob("*.yaml"))
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _project_root(monkeypatch):
    # the console script sets FLOWSIM_ROOT so relative data paths resolve from the project root
    monkeypatch.setenv("FLOWSIM_ROOT", str(ROOT))


def compose(overrides: list[str] | None = None) -> dict:
    """The resolved config as the CLI would see it, as a plain dict without the ``hydra`` key."""
    with hydra.initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra.compose("config", overrides=overrides or [])
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    return raw


@pytest.fixture(scope="module")
def base() -> dict:
    return compose()


# -- every shipped config composes and validates -------------------------------------------------


def test_configs_found():
    assert "default" in SYSTEMS
    assert "baseline" in SCENARIOS


@pytest.mark.parametrize("name", SYSTEMS)
def test_system_composes_and_validates(name):
    raw = compose([f"system={name}"])
    config = validate(raw)
    assert isinstance(config, Config)
    assert config.system.name  # a system names itself
    assert config.system.acutes  # at least one acute service (by role)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_composes_and_validates(name):
    raw = compose([f"scenario={name}"])
    config = validate(raw)
    assert config.scenario.name == raw["scenario"]["name"]


def test_default_config_validates_unchanged(base):
    # guard for the bad-input table below: only the one change makes each case fail
    validate(copy.deepcopy(base))


# -- bad input: one change each, ConfigError naming the field and the rule ------------------------


def _set(path: str, value):
    def change(d: dict) -> None:
        *parents, last = path.split(".")
        for k in parents:
            d = d[k]
        d[last] = value

    return change


NAN, INF = float("nan"), float("inf")
GREATER_THAN_0 = r"greater than 0"
FINITE = r"finite"
SUM_TO_1 = r"sum to 1"
EXTRA = r"[Ee]xtra inputs are not permitted"

BAD = [
    # id, change, field (dotted path), rule (regex)
    ("negative_capacity", _set("system.services.acute.capacity", -5),
     "system.services.acute.capacity", GREATER_THAN_0),
    ("zero_capacity", _set("system.services.acute.capacity", 0),
     "system.services.acute.capacity", GREATER_THAN_0),
    ("nan_capacity", _set("system.services.acute.capacity", NAN),
     "system.services.acute.capacity", FINITE),
    ("inf_capacity", _set("system.services.acute.capacity", INF),
     "system.services.acute.capacity", FINITE),
    ("nan_rate", _set("system.arrivals.emergency.rate_per_day", NAN),
     "system.arrivals.emergency.rate_per_day", FINITE),
    ("inf_rate", _set("system.arrivals.emergency.rate_per_day", INF),
     "system.arrivals.emergency.rate_per_day", FINITE),
    ("negative_rate", _set("system.arrivals.emergency.rate_per_day", -1.0),
     "system.arrivals.emergency.rate_per_day", GREATER_THAN_0),
    ("nan_stay_mean", _set("system.services.reablement.stay.mean", NAN),
     "system.services.reablement.stay.mean", FINITE),
    ("inf_stay_mean", _set("system.services.reablement.stay.mean", INF),
     "system.services.reablement.stay.mean", FINITE),
    ("next_sum_low", _set("system.services.reablement.next.home", 0.5),
     "system.services.reablement.next", SUM_TO_1),
    ("next_sum_high", _set("system.services.reablement.next.home", 0.9),
     "system.services.reablement.next", SUM_TO_1),
    ("group_shares_sum", _set("system.arrivals.emergency.group_shares.age_18_64", 0.6),
     "system.arrivals.emergency.group_shares", SUM_TO_1),
    ("pathway_shares_sum", _set("system.discharge.pathway_shares_by_group.age_18_64.P0", 0.9),
     "system.discharge.pathway_shares_by_group.age_18_64", SUM_TO_1),
    ("unknown_top_key", _set("colour", "blue"), "colour", EXTRA),
    ("unknown_service_key", _set("system.services.acute.colour", "blue"),
     "system.services.acute.colour", EXTRA),
    ("unknown_dist_key", _set("system.services.reablement.stay.colour", "blue"),
     "system.services.reablement.stay.colour", EXTRA),
    ("unknown_run_key", _set("run.colour", "blue"), "run.colour", EXTRA),
    ("warmup_equals_horizon", _set("run.warmup_days", 545),
     "run.warmup_days", r"shorter than horizon_days"),
    ("warmup_beyond_horizon", _set("run.warmup_days", 600),
     "run.warmup_days", r"shorter than horizon_days"),
    ("lognormal_median_equals_mean", _set("system.services.reablement.stay.median", 12),
     "system.services.reablement.stay", r"mean > median"),
    ("lognormal_median_above_mean", _set("system.services.reablement.stay.median", 20),
     "system.services.reablement.stay", r"mean > median"),
    ("unknown_routing_target",
     _set("system.services.reablement.next", {"home": 0.7, "nowhere": 0.3}),
     "system.services.reablement.next", r"unknown target 'nowhere'"),
    ("routing_cycle",
     _set("system.services.home_care.next", {"death": 0.45, "reablement": 0.20, "home": 0.35}),
     "system.services", r"cycle.*(reablement -> home_care -> reablement|home_care -> reablement "
                        r"-> home_care)"),
    # when_full: who finds a service full goes elsewhere or is lost
    ("when_full_unknown", _set("system.services.reablement.when_full", "nowhere"),
     "system.services.reablement.when_full", r"unknown rule 'nowhere'"),
    ("when_full_itself", _set("system.services.reablement.when_full", "reablement"),
     "system.services.reablement.when_full", r"cannot overflow to itself"),
    ("when_full_to_acute", _set("system.services.reablement.when_full", "acute"),
     "system.services.reablement.when_full", r"cannot overflow to 'acute'"),
    ("when_full_on_acute", _set("system.services.acute.when_full", "lost"),
     "system.services.acute.when_full", r"only a service after acute care"),
    ("when_full_on_assessment", _set("system.services.assessment.when_full", "home"),
     "system.services.assessment.when_full", r"only a service after acute care"),
    ("when_full_cycle", lambda d: (_set("system.services.reablement.when_full", "step_down")(d),
                                   _set("system.services.step_down.when_full", "home_care")(d),
                                   _set("system.services.home_care.when_full", "reablement")(d)),
     "system.services.reablement.when_full",
     r"cycle \(reablement -> step_down -> home_care -> reablement\)"),
    ("when_full_with_start_queue",
     lambda d: (_set("system.services.care_home.when_full", "lost")(d),
                _set("system.services.care_home.start_queue", 5)(d)),
     "system.services.care_home.when_full", r"no line, so no start_queue"),
]


@pytest.mark.parametrize("change, field, rule", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_rejected(base, change, field, rule):
    raw = copy.deepcopy(base)
    if field.startswith("run.warmup_days"):
        assert raw["run"]["horizon_days"] == 545  # the cases above assume the default horizon
    change(raw)
    with pytest.raises(ConfigError) as info:
        validate(raw)
    message = str(info.value)
    assert re.search(rf"(^|\s){re.escape(field)}[.:]", message, re.M), message
    assert re.search(rule, message), message
    assert "Traceback" not in message


def test_when_full_rules_accepted(base):
    """Every rule validates: wait (the default), lost, home, and a chain of overflows ending in
    one of them."""
    raw = copy.deepcopy(base)
    services = raw["system"]["services"]
    assert validate(raw).system.services["reablement"].when_full == "wait"
    services["step_down"]["when_full"] = "reablement"
    services["reablement"]["when_full"] = "home_care"
    services["home_care"]["when_full"] = "lost"
    services["care_home"]["when_full"] = "home"
    got = validate(raw).system.services
    assert [got[s].when_full for s in ("step_down", "reablement", "home_care", "care_home")] == [
        "reablement", "home_care", "lost", "home"]  # fmt: skip


# -- rates CSVs ---------------------------------------------------------------------------------

RATES_FIELD = "system.arrivals.emergency.rates_csv"


def _days(raw: dict) -> list[dt.date]:
    start = dt.date.fromisoformat(str(raw["system"]["start_date"]))
    n = math.ceil(raw["run"]["horizon_days"])
    return [start + dt.timedelta(days=i) for i in range(n)]


def _rows(days: list[dt.date]) -> list[str]:
    return [f"{d.isoformat()},{90 + (i % 7)}" for i, d in enumerate(days)]


def _csv(raw: dict, kind: str) -> str:
    days = _days(raw)
    rows = _rows(days)
    header = "date,rate_per_day"
    if kind == "missing_column":
        header = "date,rate"
    elif kind == "bad_date":
        rows[10] = "2025-13-45,95"
    elif kind == "negative_rate":
        rows[10] = f"{days[10]},-3"
    elif kind == "non_numeric_rate":
        rows[10] = f"{days[10]},lots"
    elif kind == "duplicate_date":
        rows.insert(11, rows[10])
    elif kind == "ends_early":
        rows = rows[: len(rows) // 2]
    elif kind == "starts_late":
        rows = rows[5:]
    elif kind == "gap_inside":
        rows = rows[:100] + rows[110:]
    return header + "\n" + "\n".join(rows) + "\n"


CSV_RULES = {
    "missing_column": r"rate_per_day",
    "bad_date": r"2025-13-45.*(YYYY-MM-DD|date)",
    "negative_rate": r">= 0|negative",
    "non_numeric_rate": r"'lots'.*not a number",
    "duplicate_date": r"twice|duplicate",
    "ends_early": r"cover every day",
    "starts_late": r"cover every day",
    "gap_inside": r"cover every day|no rate for",
}
def _with_rates_csv(base: dict, tmp_path: Path, kind: str) -> dict:
    raw = copy.deepcopy(base)
    path = tmp_path / f"{kind}.csv"
    path.write_text(_csv(raw, kind), encoding="utf-8")
    emergency = raw["system"]["arrivals"]["emergency"]
    del emergency["rate_per_day"]
    emergency["rates_csv"] = str(path)
    return raw


@pytest.mark.parametrize("kind", list(CSV_RULES))
def test_bad_rates_csv_rejected_with_rule(base, tmp_path, kind):
    raw = _with_rates_csv(base, tmp_path, kind)
    with pytest.raises(ConfigError) as info:
        validate(raw)
    message = str(info.value)
    assert re.search(CSV_RULES[kind], message), message
    assert f"{kind}.csv" in message, message  # names the file


@pytest.mark.parametrize("kind", list(CSV_RULES))
def test_bad_rates_csv_names_field(base, tmp_path, kind):
    raw = _with_rates_csv(base, tmp_path, kind)
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert RATES_FIELD in str(info.value), str(info.value)


def test_good_rates_csv_with_bom_validates(base, tmp_path):
    raw = copy.deepcopy(base)
    days = _days(raw)
    path = tmp_path / "rates_bom.csv"
    path.write_text("\ufeffdate,rate_per_day\n" + "\n".join(_rows(days)) + "\n", encoding="utf-8")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    emergency = raw["system"]["arrivals"]["emergency"]
    del emergency["rate_per_day"]
    emergency["rates_csv"] = str(path)
    config = validate(raw)
    assert config.system.arrivals["emergency"].rates_csv == str(path)
    assert config.system.arrivals["emergency"].rate_per_day is None

    from flowsim.patients import rates_by_day

    rates = rates_by_day(config.system.arrivals["emergency"], config.system.start_date, len(days))
    np.testing.assert_array_equal(rates, [90 + (i % 7) for i in range(len(days))])


def test_rates_csv_and_rate_per_day_together_rejected(base, tmp_path):
    raw = _with_rates_csv(base, tmp_path, "ok")
    raw["system"]["arrivals"]["emergency"]["rate_per_day"] = 99.0
    with pytest.raises(ConfigError, match=r"system\.arrivals\.emergency.*exactly one"):
        validate(raw)


# -- distributions ------------------------------------------------------------------------------

N_GRID = 1_000_000
GRID = (np.arange(N_GRID) + 0.5) / N_GRID  # midpoints: a fine, even grid of quantiles


def _lognormal_mean(mu: float, sigma: float) -> float:
    return math.exp(mu + sigma**2 / 2)


# (Dist, closed-form mean from the parameters, relative tolerance of the grid mean)
DISTS = [
    ("lognormal_median_mean", Dist(dist="lognormal", median=7.0, mean=12.0), 12.0, 5e-3),
    ("lognormal_mean_sd", Dist(dist="lognormal", mean=5.0, sd=4.0), 5.0, 5e-3),
    ("gamma_mean_sd", Dist(dist="gamma", mean=36.0, sd=20.0), 36.0, 1e-3),
    ("gamma_shape_scale", Dist(dist="gamma", shape=0.7, scale=3.0), 0.7 * 3.0, 1e-3),
    ("weibull", Dist(dist="weibull", shape=1.6, scale=10.0),
     10.0 * math.gamma(1 + 1 / 1.6), 1e-3),
    ("weibull_heavy", Dist(dist="weibull", shape=0.8, scale=4.0),
     4.0 * math.gamma(1 + 1 / 0.8), 3e-3),
    ("exponential", Dist(dist="exponential", mean=2.5), 2.5, 2e-3),
    ("fixed", Dist(dist="fixed", value=3.25), 3.25, 1e-12),
    ("empirical", Dist(dist="empirical", values=[0.5, 1.0, 2.0, 4.0, 12.5]),
     (0.5 + 1.0 + 2.0 + 4.0 + 12.5) / 5, 1e-9),
]


@pytest.mark.parametrize("d, closed, tol", [x[1:] for x in DISTS], ids=[x[0] for x in DISTS])
def test_ppf_mean(d, closed, tol):
    x = distributions.ppf(d, GRID)
    assert x.shape == GRID.shape
    assert np.all(x >= 0) and np.all(np.isfinite(x))
    assert np.all(np.diff(x) >= 0), "inversion must be monotone in u"
    assert x.mean() == pytest.approx(closed, rel=tol)
    assert distributions.mean_days(d) == pytest.approx(closed, rel=1e-9)


def test_lognormal_parametrisations_match_their_parameters():
    by_median = Dist(dist="lognormal", median=7.0, mean=12.0)
    x = distributions.ppf(by_median, GRID)
    assert np.median(x) == pytest.approx(7.0, rel=1e-4)
    mu, sigma = math.log(7.0), math.sqrt(2 * math.log(12.0 / 7.0))
    assert _lognormal_mean(mu, sigma) == pytest.approx(12.0)
    np.testing.assert_allclose(x[::9973], np.exp(mu + sigma * special.ndtri(GRID[::9973])),
                               rtol=1e-10)

    by_sd = Dist(dist="lognormal", mean=5.0, sd=4.0)
    x = distributions.ppf(by_sd, GRID)
    assert x.std() == pytest.approx(4.0, rel=2e-2)  # the far tail is thin on a finite grid

    # by mu and sigma of the log (PathSimR's fits): the same stays as by median and mean
    by_mu = Dist(dist="lognormal", mu=mu, sigma=sigma)
    np.testing.assert_allclose(distributions.ppf(by_mu, GRID), distributions.ppf(by_median, GRID),
                               rtol=1e-12)  # fmt: skip
    geriatric = Dist(dist="lognormal", mu=0.469, sigma=1.692)  # DOMAIN.md: median 1.6, mean 6.7
    assert np.median(distributions.ppf(geriatric, GRID)) == pytest.approx(1.6, rel=1e-2)
    assert distributions.mean_days(geriatric) == pytest.approx(6.7, rel=1e-2)
    assert distributions.mean_days(geriatric) == pytest.approx(_lognormal_mean(0.469, 1.692))
    with pytest.raises(ValueError, match="takes"):
        Dist(dist="lognormal", mu=1.0)  # sigma too


def test_gamma_mean_sd_gives_that_sd():
    x = distributions.ppf(Dist(dist="gamma", mean=36.0, sd=20.0), GRID)
    assert x.std() == pytest.approx(20.0, rel=2e-3)


def test_empirical_resamples_each_value_equally():
    values = [0.5, 1.0, 2.0, 4.0, 12.5]
    x = distributions.ppf(Dist(dist="empirical", values=values), GRID)
    got, counts = np.unique(x, return_counts=True)
    np.testing.assert_array_equal(got, sorted(values))
    assert np.all(np.abs(counts - N_GRID / len(values)) <= 1)


@pytest.mark.parametrize("d, cap, closed", [
    (Dist(dist="exponential", mean=10.0, max=30.0), 30.0, 10.0 * (1 - math.exp(-30.0 / 10.0))),
    # E[min(X, c)] for a lognormal(mu, sigma)
    (Dist(dist="lognormal", median=7.0, mean=12.0, max=42.0), 42.0,
     _lognormal_mean(math.log(7.0), math.sqrt(2 * math.log(12 / 7)))
     * special.ndtr((math.log(42.0) - math.log(7.0) - 2 * math.log(12 / 7))
                    / math.sqrt(2 * math.log(12 / 7)))
     + 42.0 * (1 - special.ndtr((math.log(42.0) - math.log(7.0))
                                / math.sqrt(2 * math.log(12 / 7))))),
], ids=["exponential", "lognormal"])
def test_max_caps(d, cap, closed):
    x = distributions.ppf(d, GRID)
    assert x.max() == cap  # the cap binds on this grid and nothing exceeds it
    assert np.all(x <= cap)
    assert closed < d.mean  # the cap must matter for this test to mean anything
    assert x.mean() == pytest.approx(closed, rel=1e-4)
    assert distributions.mean_days(d) == pytest.approx(closed, rel=1e-4)


@pytest.mark.parametrize("z", [0.3, 0.65])
def test_zero_probability(z):
    d = Dist(dist="lognormal", median=0.4, mean=0.7, zero_probability=z)
    x = distributions.ppf(d, GRID)
    assert np.mean(x == 0) == pytest.approx(z, abs=2 / N_GRID)
    assert np.all(x[x != 0] > 0)
    # the rest follow the distribution: the mean is (1 - z) x the uncapped mean
    assert x.mean() == pytest.approx((1 - z) * 0.7, rel=5e-3)
    assert distributions.mean_days(d) == pytest.approx((1 - z) * 0.7, rel=5e-3)


# equilibrium residual stays: 300,000 draws with a fixed seed; the tolerances below are more than
# five standard errors wide (relative SE of the mean is ~0.2% for the draws, ~0.5% for the pool)
N_RES = 300_000


def _residual(d: Dist, seed: int = 12345) -> np.ndarray:
    g = np.random.default_rng(seed)
    return distributions.residual(d, g.random(N_RES), g.random(N_RES), g.random(N_RES))


def test_residual_of_exponential_is_memoryless():
    m = 8.0
    r = _residual(Dist(dist="exponential", mean=m))
    assert r.mean() == pytest.approx(m, rel=0.03)
    # the whole distribution is the same exponential: median m ln 2, P(R > m) = 1/e
    assert np.median(r) == pytest.approx(m * math.log(2), rel=0.03)
    assert np.mean(r > m) == pytest.approx(math.exp(-1), abs=0.01)


def test_residual_of_fixed_stay_is_uniform():
    T = 6.0
    r = _residual(Dist(dist="fixed", value=T))
    assert r.min() >= 0 and r.max() <= T
    assert r.mean() == pytest.approx(T / 2, rel=0.01)
    # uniform on [0, T]: deciles at T/10, 2T/10, ...
    np.testing.assert_allclose(np.percentile(r, np.arange(10, 100, 10)),
                               T * np.arange(1, 10) / 10, atol=0.01 * T)


def test_residual_is_length_biased_not_a_plain_fraction():
    # a plain uniform fraction of an ordinary stay would give mean E[S]/2; the length-biased
    # residual has mean E[S^2] / (2 E[S]) = (sd^2 + mean^2) / (2 mean)
    mean, sd = 10.0, 10.0
    r = _residual(Dist(dist="gamma", mean=mean, sd=sd))
    assert r.mean() == pytest.approx((sd**2 + mean**2) / (2 * mean), rel=0.03)


# -- named random streams -----------------------------------------------------------------------


def test_stream_reproducible():
    a = Streams(2026, 0).uniforms("arrivals.emergency.times", 1000)
    b = Streams(2026, 0).uniforms("arrivals.emergency.times", 1000)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 1
    assert a.std() > 0.2  # genuinely random looking, not a constant


def test_streams_differ_between_names_replications_and_seeds():
    draws = {
        "base": Streams(2026, 0).uniforms("stay", 1000),
        "other_name": Streams(2026, 0).uniforms("route", 1000),
        "other_rep": Streams(2026, 1).uniforms("stay", 1000),
        "other_seed": Streams(2027, 0).uniforms("stay", 1000),
    }
    keys = list(draws)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not np.any(draws[a] == draws[b]), (a, b)
            # independent, not just shifted: correlation near 0
            assert abs(np.corrcoef(draws[a], draws[b])[0, 1]) < 0.15, (a, b)


def test_new_stream_does_not_move_others():
    s = Streams(7, 3)
    before = s.uniforms("stay", 500)
    s.uniforms("a_brand_new_stream", 10_000)  # drawing from another stream in between
    s2 = Streams(7, 3)
    s2.uniforms("yet_another", 3)
    np.testing.assert_array_equal(before, s.uniforms("stay", 500))
    np.testing.assert_array_equal(before, s2.uniforms("stay", 500))
    # and a stream's first draws do not depend on how many are asked for
    np.testing.assert_array_equal(before[:100], Streams(7, 3).uniforms("stay", 100))
