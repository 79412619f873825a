"""The provider's modules form an acyclic import graph, and the lineage contract stays importable anywhere.

Every import counts, including those inside functions: a lazy import that closes a cycle still ties two
modules' responsibilities together (the trainer launch code and the Kubernetes operator once did).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE_ROOT = REPO_ROOT / "providers" / "mlops" / "src"
PACKAGE = "mlops_provider"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Provider modules that ``path`` imports (``from a.b import c`` counts as ``a.b.c`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != PACKAGE:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (PACKAGE_ROOT / PACKAGE).rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        # A package's __init__ importing its own submodules is not a cycle between responsibilities.
        graph[name] = {m for m in _imports(path, modules) if m != name and not name.startswith(m + ".")}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_is_built_from_real_modules():
    graph = _graph()
    assert "mlops_provider.lineage" in graph and "mlops_provider.hooks.mlflow" in graph
    assert "mlops_provider.settings" in graph["mlops_provider.hooks.mlflow"]


def test_find_cycle_reports_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_provider_import_graph_has_no_cycle():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_lineage_contract_imports_without_airflow():
    """The trainer and model-server images install the provider with --no-deps: the contract must need nothing."""
    code = (
        "import sys; sys.modules['airflow'] = None; "
        "import mlops_provider.lineage as l, mlops_provider.payloads as p; print(l.CHAMPION, p.parse_payload('{}'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(PACKAGE_ROOT)}
    )
    assert out.stdout.strip() == "champion {}"
