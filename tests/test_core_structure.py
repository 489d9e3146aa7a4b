"""How the core hangs together: no import cycle in `zoo/`, the core never imports a domain, a
registry that is complete in a bare interpreter, and one way in for every weights source."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """zoo module -> the zoo modules it imports (anywhere in the file, lazy imports included)."""
    modules = {module_name(p): p for p in ZOO.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
            edges |= {t for t in targets if t.split(".")[0] == "domains"}  # caught by the next test
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt in graph and not state.get(nxt):
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if not state.get(node):
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_zoo():
    graph = import_graph()
    assert "zoo.hub" in graph["zoo.factory"] and "zoo.factory" in graph["zoo.training.loading"]  # the graph is read
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_core_never_imports_a_domain():
    offenders = {m: sorted(e for e in edges if e.startswith("domains")) for m, edges in import_graph().items()}
    assert not {m: e for m, e in offenders.items() if e}


def _fresh(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_list_models_is_complete_in_an_interpreter_that_imported_only_zoo():
    bare = json.loads(_fresh("import json, zoo; print(json.dumps(zoo.list_models()))"))
    everything = json.loads(
        _fresh(
            "import importlib, json, pkgutil, domains\n"
            "for m in pkgutil.iter_modules(domains.__path__): importlib.import_module('domains.' + m.name)\n"
            "import zoo; print(json.dumps(zoo.list_models()))"
        )
    )
    assert bare == everything
    assert "s5_policy_small" in bare  # declared by domains.rl through the `longzoo.models` entry points


def test_a_domain_backbone_round_trips_in_plain_python(tmp_path):
    code = (
        "import sys, torch, zoo\n"
        "from zoo.hub import save_pretrained\n"
        "name = [n for n in zoo.list_models('*_policy_small')][0]\n"
        "m = zoo.create_model(name).eval()\n"
        f"save_pretrained(m, {str(tmp_path / 'policy')!r})\n"
        f"again = zoo.from_pretrained({str(tmp_path / 'policy')!r})\n"
        "assert not again.training\n"
        "assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values()))\n"
        "print('ok')"
    )
    assert _fresh(code).strip() == "ok"


@pytest.mark.parametrize("module", ["zoo.hub"])
def test_hub_is_pure_io(module):
    """The hub finds, reads and writes files: it builds no model and knows no names."""
    edges = import_graph()[module]
    assert not {"zoo.registry", "zoo.factory", "zoo.models"} & edges, edges
