"""The rules of the house (docs/architecture.md), checked: lint, types, layering, private Dagster APIs in tests,
and the code location's graph against its reviewed snapshot.

Each exception below is named, with the reason it still stands; most wait for an item of issue #21.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from obs_pipelines_tests import definitions_snapshot

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "obs_pipelines"
TESTS = ROOT / "obs_pipelines_tests"
BIN = Path(sys.executable).parent

PHASES = {"monitoring", "observability", "online_evals", "offline_evals", "alerts", "reports"}

# Another phase's modules a phase may import besides its `tables.py`: published entry points.
PUBLISHED = {
    # the fast path (alerts/realtime.py) rolls up the last minutes of spans with monitoring's own rollups
    "obs_pipelines.monitoring.rollups",
    # alerts' diagnosis (alerts/source.py) computes an hour's observability tables the phase has not written yet
    "obs_pipelines.observability.api",
}

# (importing module, imported module) -> why it still stands
CROSS_PHASE_EXCEPTIONS: dict[tuple[str, str], str] = {}

# Modules that assemble the phases: the composition root, the settings object and the command line.
COMPOSITION = {"obs_pipelines.definitions", "obs_pipelines.settings", "obs_pipelines.demo"}

# Modules outside the composition that import the composition root `obs_pipelines.definitions`.
DEFINITIONS_EXCEPTIONS: dict[str, str] = {}

# Modules outside defs modules, orchestration/, the composition and the CLI that import dagster.
DAGSTER_EXCEPTIONS: dict[str, str] = {}

# Test modules allowed a private `dagster._` import: no public API gives what they check.
PRIVATE_DAGSTER_IN_TESTS = {
    "test_secrets.py": "RepositorySnap: the snapshot the UI reads, searched for the password",
    "deploy/test_instance_configs.py": "monitor_started_run: one pass of the daemon's run monitoring",
    "alerts/test_daemon.py": "TickStatus: a sensor tick's outcome as the daemon recorded it",
    "alerts/daemon_harness.py": "InstigatorType: listing the ticks the daemon recorded",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count too); for `from m import n`,
    both `m` and `m.n` (n may be a module)."""
    names: set[str] = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _phase(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in PHASES else None


def _is_defs(module: str) -> bool:
    """A phase's defs module, or a module of its defs package (alerts/defs/: checks, sensors, freshness)."""
    return module.endswith(".defs") or ".defs." in module


def _is_cli(module: str) -> bool:
    """The command line's top-level modules (cli.py, cli_*.py)."""
    return module.startswith("obs_pipelines.cli")


def _as_module(name: str) -> str:
    """`obs_pipelines.x.y.NAME` -> `obs_pipelines.x.y`: the longest prefix that is a module or package here."""
    parts = name.split(".")
    while len(parts) > 1 and not ((ROOT / Path(*parts)).with_suffix(".py").exists() or (ROOT / Path(*parts)).is_dir()):
        parts.pop()
    return ".".join(parts)


def _private_dagster(names: set[str]) -> set[str]:
    """`dagster._core...`, `dagster_shared._...`: modules of Dagster's packages below a private name."""
    return {n for n in names if n.split(".")[0].startswith("dagster") and "._" in n}


def _cross_phase_imports() -> set[tuple[str, str]]:
    found = set()
    for path in _sources():
        module = _module_name(path)
        own = _phase(module)
        for name in _imports(path) if own else ():
            other = _phase(name)  # None for a bare package (`from obs_pipelines.x import m` also yields x.m)
            if other is None or other == own or name.split(".")[2] == "tables":
                continue
            if not any(name == p or name.startswith(p + ".") for p in PUBLISHED):
                found.add((module, _as_module(name)))
    return found


def test_phases_import_another_phase_only_through_its_tables_or_a_published_entry_point():
    found = _cross_phase_imports()
    assert found - set(CROSS_PHASE_EXCEPTIONS) == set()
    assert set(CROSS_PHASE_EXCEPTIONS) - found == set(), "an exception no longer needed: remove it"


def test_the_layering_scanner_sees_imports_inside_functions_too():
    # alerts/source.py imports observability's entry point inside a method; the CLI imports definitions inside a
    # function
    assert "obs_pipelines.observability.api" in _imports(PACKAGE / "alerts" / "source.py")
    assert "obs_pipelines.definitions" in _imports(PACKAGE / "cli.py")


def test_alerts_read_observability_only_through_its_tables_and_its_published_entry_point():
    """Alerts' diagnosis reads observability's tables from the store, or computes an hour the phase has not
    written yet through `observability/api.py` (docs/architecture.md); nothing else of that phase."""
    found = set()
    for path in sorted((PACKAGE / "alerts").rglob("*.py")):
        for name in _imports(path):
            module = _as_module(name)
            if _phase(module) == "observability":
                found.add(module)
    assert found <= {"obs_pipelines.observability.tables", "obs_pipelines.observability.api"}
    assert "obs_pipelines.observability.api" in found
    # the entry point is the phase's own: it uses the phase's modules and nothing of alerts
    assert not {n for n in _imports(PACKAGE / "observability" / "api.py") if _phase(n) == "alerts"}


def test_foundation_modules_never_import_a_phase():
    """store/, pricing/, ingest/, synth/, orchestration/ and the shared top-level modules sit below the phases."""
    found = set()
    for path in _sources():
        module = _module_name(path)
        if _phase(module) or module in COMPOSITION or _is_cli(module):
            continue
        for name in _imports(path):
            if _phase(name) or name in {f"obs_pipelines.{p}" for p in PHASES}:
                found.add((module, name))
            if name == "obs_pipelines.definitions" and module not in DEFINITIONS_EXCEPTIONS:
                found.add((module, name))
    assert found == set()


def test_the_scorers_library_stands_alone():
    """obs_pipelines/scorers/ (docs/architecture.md) is a library both eval phases use, the way autoevals is one:
    it imports no Dagster, no SQL layer and nothing of the project outside itself (no phase, no store)."""
    found = set()
    for path in sorted((PACKAGE / "scorers").rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top.startswith("dagster") or top == "sqlalchemy" \
                    or (top == "obs_pipelines" and name != "obs_pipelines.scorers"
                        and not name.startswith("obs_pipelines.scorers.")):
                found.add((_module_name(path), name))
    assert found == set()


def test_the_eval_phases_share_scorers_only_through_the_library():
    # offline evals score with the library, never with the online phase's modules (tables aside)
    found = {(m, n) for m, n in _cross_phase_imports() if m.startswith("obs_pipelines.offline_evals")}
    assert found == set()
    users = {_module_name(p) for p in _sources() if any(n.startswith("obs_pipelines.scorers") for n in _imports(p))}
    assert any(m.startswith("obs_pipelines.online_evals") for m in users)
    assert any(m.startswith("obs_pipelines.offline_evals") for m in users)


def test_only_the_composition_and_the_command_line_import_the_composition_root():
    importers = {_module_name(p) for p in _sources()
                 if "obs_pipelines.definitions" in _imports(p) or "obs_pipelines.definitions.defs" in _imports(p)}
    others = {m for m in importers if m not in COMPOSITION and not _is_cli(m)}
    assert others == set(DEFINITIONS_EXCEPTIONS)


def test_dagster_is_imported_only_by_defs_modules_orchestration_the_composition_and_the_command_line():
    found = set()
    for path in _sources():
        module = _module_name(path)
        if _is_defs(module) or module.startswith("obs_pipelines.orchestration") or module in COMPOSITION \
                or _is_cli(module):
            continue
        if any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in _imports(path)):
            found.add(module)
    assert found == set(DAGSTER_EXCEPTIONS)


def test_the_package_uses_no_private_dagster_module():
    assert {_module_name(p) for p in _sources() if _private_dagster(_imports(p))} == set()


def test_tests_use_no_private_dagster_api_beyond_the_named_exceptions():
    found = set()
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names = _imports(path)
        # `dg._core...` reaches a private module through the public package object
        attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                      and n.value.id in {"dg", "dagster"} and n.attr.startswith("_")}
        if _private_dagster(names) or attributes:
            found.add(path.relative_to(TESTS).as_posix())
    assert found == set(PRIVATE_DAGSTER_IN_TESTS)


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_finds_nothing_in_the_package():
    """pyflakes, import order, bugbear and private access across modules ([tool.ruff] in pyproject.toml)."""
    done = _run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "obs_pipelines"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_pyright_in_basic_mode_finds_no_error_beyond_the_baseline(tmp_path):
    """basedpyright (pyright with node inside its wheel: no download) in basic mode ([tool.basedpyright]). Errors
    that predate the check are listed in pyright_baseline.json and only ever shrink (docs/architecture.md)."""
    tool = BIN / "basedpyright"
    if not tool.exists():
        tool = Path(shutil.which("basedpyright") or "basedpyright")
    baseline = tmp_path / "baseline.json"  # a copy: the tool rewrites the file it is given when errors go away
    shutil.copy(TESTS / "pyright_baseline.json", baseline)
    # the project named explicitly: without it the tool takes its root from where the baseline file lies (a
    # checkout under /tmp then made it check /tmp/obs_pipelines, which does not exist)
    done = _run([str(tool), "-p", str(ROOT / "pyproject.toml"), "--pythonpath", sys.executable,
                 "--baselinefile", str(baseline), "--level", "error"])
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr


def test_the_code_locations_graph_matches_its_reviewed_snapshot():
    """Every asset key, check key, job, schedule and sensor of the example settings. After an intended change:
    `.venv/bin/python -m obs_pipelines_tests.definitions_snapshot`, and review the diff of the JSON file."""
    current = definitions_snapshot.render(definitions_snapshot.current_snapshot())
    assert current == definitions_snapshot.SNAPSHOT_FILE.read_text()
