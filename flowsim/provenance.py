"""Provenance for the summit pack: every resolved parameter with its stated source, and a
STRESS-DES checklist (Monks et al. 2019) filled from a run's metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from flowsim.outputs import Tables


def parameters(t: Tables) -> pd.DataFrame:
    """Every resolved parameter of the system, scenario and run, with its stated source."""
    rows: list[dict] = []

    def walk(node, path: str, source: str) -> None:
        if isinstance(node, dict):
            own = node.get("source") or source
            for k, v in node.items():
                if k not in ("source", "description"):
                    walk(v, f"{path}.{k}" if path else str(k), own)
        elif isinstance(node, list) and any(isinstance(x, dict) for x in node):
            for k, v in enumerate(node):
                walk(v, f"{path}[{k}]", source)
        else:
            value = ", ".join(map(str, node)) if isinstance(node, list) else node
            rows.append({"parameter": path, "value": value, "source": source or ""})

    cfg = t.config
    walk(cfg.get("system", {}), "system", "")
    scenario = cfg.get("scenario", {})
    walk(scenario, "scenario", f"scenario {scenario.get('name', '')}".strip())
    walk(cfg.get("run", {}), "run", "run settings")
    if cfg.get("compare"):
        rows.append({"parameter": "compare", "value": ", ".join(cfg["compare"]), "source": ""})
    return pd.DataFrame(rows, columns=["parameter", "value", "source"])


def stress_des(t: Tables) -> pd.DataFrame:
    """A STRESS-DES checklist (Monks et al. 2019) filled from the run's metadata."""
    cfg, run, m = t.config, t.run, t.manifest
    system = cfg.get("system", {})
    services = ", ".join(system.get("services", {}))
    arrivals = ", ".join(system.get("arrivals", {}))
    investments = cfg.get("scenario", {}).get("investments", [])
    v = m.get("versions", {})
    rows = [
        (
            "1.1",
            "Purpose of the model",
            "Where delays in discharge from hospital come from, and "
            "what investments in capacity do to them and to the whole system's cost.",
        ),
        (
            "1.2",
            "Model outputs",
            "KPIs per replication (runs.parquet), daily series (daily.parquet),"
            " flows (flows.parquet), summary with 95% CIs (summary.csv); see the README.",
        ),
        (
            "1.3",
            "Experimentation aims",
            ", ".join(t.scenarios)
            or "appraisal: "
            + ", ".join(
                k
                for k in ("capacity_sweep", "bottlenecks", "allocation")
                if getattr(t, k) is not None
            ),
        ),
        ("2.1", "Base model overview", "See the flow diagram (Sankey) in this report."),
        (
            "2.2",
            "Base model logic",
            "Patients arrive, wait for an acute bed, are treated, become "
            "ready to leave, are assessed and discharged on pathways 0-3; a patient who needs a "
            "place keeps the bed until one is free (first come, first served).",
        ),
        (
            "2.3",
            "Scenario logic",
            f"{len(investments)} investment(s) in the reported scenario; "
            "each scenario lists only what changes (scenarios/*.yaml).",
        ),
        (
            "2.4",
            "Algorithms",
            "Inverse-CDF sampling; thinning for non-stationary arrivals; "
            "equilibrium residual stays for people already in care at the start.",
        ),
        (
            "2.5",
            "Components",
            f"entities: patients in groups {', '.join(system.get('groups', []))};"
            f" resources: {services}; queues: FCFS; entry points: {arrivals}; exits: home, death.",
        ),
        (
            "3.1",
            "Data sources",
            f"{system.get('name', '?')} system: "
            + (system.get("description") or "")
            + " Sources per parameter below.",
        ),
        ("3.2", "Pre-processing", "None inside the model; rates and empirical CSVs read as given."),
        ("3.3", "Input parameters", "The parameter table below (resolved values and sources)."),
        ("3.4", "Assumptions", "Values marked [assumption] in the parameter table."),
        (
            "4.1",
            "Initialisation",
            f"warm-up {t.window['warmup_days']:g} days, plus any people in care"
            " at the start (start_occupancy) with residual stays; checked by MSER-5.",
        ),
        (
            "4.2",
            "Run length",
            f"{t.window['horizon_days']:g} days including the warm-up; "
            f"{t.measured_days:g} days measured.",
        ),
        (
            "4.3",
            "Estimation approach",
            f"{t.replications} replications; Student-t 95% CIs; paired "
            "differences with common random numbers across scenarios.",
        ),
        (
            "5.1",
            "Software",
            f"flowsim {v.get('flowsim')}, Python {v.get('python')}, SimPy "
            f"{v.get('simpy')}, NumPy {v.get('numpy')}, Numba {v.get('numba')}.",
        ),
        (
            "5.2",
            "Random sampling",
            f"seed {m.get('seed')}; one named stream per sampled quantity: "
            "SeedSequence(seed, spawn_key=(replication, crc32(name))).",
        ),
        (
            "5.3",
            "Model execution",
            f"replications in {run.get('jobs')} worker process(es); results"
            " identical whatever the number of workers.",
        ),
        ("5.4", "System specification", "Not recorded; results do not depend on the machine."),
        (
            "6.1",
            "Computer model sharing",
            "flowsim is open source; manifest.json holds the full "
            f"resolved config (hash {str(m.get('config_hash', ''))[:12]}).",
        ),
    ]
    return pd.DataFrame(rows, columns=["item", "topic", "this run"])
