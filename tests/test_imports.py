"""The architecture's boundaries (DESIGN.md section 5), for every module of the package: the
simulation core never imports Hydra, pandas or plotly; the report never imports SimPy; only the
command (cli.py) knows Hydra; no module reaches into another's private names; no import
circles. A new module must be
placed in one of the groups below, so the checks cover it."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flowsim"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")

CORE = {
    "config", "network", "streams", "distributions", "kernels", "patients", "plan", "engine",
    "model", "records", "tally", "compiled", "arrays", "eventloop", "fields", "loopstate",
    "reasons", "inlining",
}  # fmt: skip
"""The simulation core: a replication from a validated config to its tally."""
REPORT = {
    "report", "figures", "comparisons", "styling", "deck", "workbook", "provenance", "outputs",
    "wording", "national",
}  # fmt: skip
"""The summit pack, made from an output folder's tables alone."""
REST = {
    "cli", "printout", "runner", "results", "uncertainty", "files", "scenarios", "investments",
    "appraisal",
    "warmup", "targets", "calibrate", "sweep",
}  # fmt: skip
"""Between them: running replications, tables and files, what-ifs, calibration, the command."""


def test_every_module_is_in_a_group():
    assert set(MODULES) == CORE | REPORT | REST, sorted(set(MODULES) ^ (CORE | REPORT | REST))
    assert not (CORE & REPORT or CORE & REST or REPORT & REST)


def _loaded(module: str) -> set[str]:
    code = (
        f"import sys, flowsim.{module}\n"
        "print(' '.join(m for m in ('hydra', 'omegaconf', 'pandas', 'plotly', 'simpy') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """What importing each core and report module loads, each in a fresh interpreter."""
    names = sorted(CORE | REPORT)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(_loaded, names)))


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_imports_no_hydra_pandas_or_plotly(loaded, module):
    assert not loaded[module] & {"hydra", "omegaconf", "pandas", "plotly"}, loaded[module]


@pytest.mark.parametrize("module", sorted(REPORT))
def test_the_report_never_imports_simpy(loaded, module):
    assert "simpy" not in loaded[module]


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) of every import statement in a module's source,
    inside functions too."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


@pytest.mark.parametrize("module", MODULES)
def test_only_the_command_knows_hydra(module):
    hydra = [m for m, _ in _imports(module) if m.split(".")[0] in ("hydra", "omegaconf")]
    assert module == "cli" or not hydra, hydra


@pytest.mark.parametrize("module", MODULES)
def test_no_module_takes_a_private_name_of_another(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    ours = {m.rsplit(".", 1)[-1] for m, _ in _imports(module) if m.startswith("flowsim")}
    ours |= {n for m, names in _imports(module) if m == "flowsim" for n in names}
    private = [
        f"{m}: {n}"
        for m, names in _imports(module)
        if m.startswith("flowsim.")
        for n in names
        if n.startswith("_") and not n.endswith("__")
    ]
    private += [
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ours
        and node.attr.startswith("_")
        and not node.attr.endswith("__")  # __version__ and the like are public
    ]
    assert not private, private


def _run_time_imports(module: str) -> set[str]:
    """The package's modules a module imports when it runs (inside functions too; not those
    under ``if TYPE_CHECKING:``, which are for type annotations only)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("flowsim.")}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("flowsim."):
                out.add(node.module.split(".")[1])
            elif node.module == "flowsim":
                out |= {a.name for a in node.names if a.name in MODULES}
    return out - {module}


def test_no_import_circles():
    """The modules' imports (inside functions too) form no circle: each module can be read
    knowing only the ones below it."""
    graph = {module: _run_time_imports(module) for module in MODULES}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import circle: {' -> '.join(err.args[1])}")


def test_results_consume_resolved_investments_not_scenarios():
    """Investments are resolved below the tables (investments.py), so results never reaches up
    to scenarios (it once did, inside a function, to cost investments)."""
    assert "scenarios" not in _run_time_imports("results")
    assert "investments" in _run_time_imports("results")
