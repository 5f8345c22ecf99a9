"""The shape of the code, checked from its source: no import cycle anywhere in ``loadtest/``, and no
module (nor a test or a bench) touching another module's private names.

Both read every module with :mod:`ast` (imports inside functions and under ``TYPE_CHECKING`` count:
a cycle hidden in a function is still a cycle), so they fail the moment a change brings one in.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "loadtest"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``loadtest`` modules ``name`` imports (a ``from package import module`` names the module)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    out.add(sub)
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_loadtest() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    assert graph["loadtest.session.client"], "the import reader found nothing: it is broken"
    assert import_cycles(graph) == []


def test_transport_and_shared_receiver_do_not_import_each_other() -> None:
    modules = _modules()
    known = set(modules)
    transport = _imports("loadtest.session.transport", modules["loadtest.session.transport"], known)
    reactor = _imports("loadtest.session.reactor", modules["loadtest.session.reactor"], known)
    assert "loadtest.session.reactor" not in transport and "loadtest.session.pacer" not in transport
    assert "loadtest.session.transport" not in reactor and "loadtest.session.pacer" not in reactor


# -- private names ------------------------------------------------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_private(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, classes, module and instance attributes, slots."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and _private(node.name):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _private(node.value):
            names.add(node.value)  # __slots__ entries
    return names


def _loadtest_private_names() -> dict[str, set[str]]:
    return {name: _defined_private(ast.parse(path.read_text())) for name, path in _modules().items()}


def _foreign_uses(path: Path, theirs: set[str]) -> list[str]:
    """Uses in ``path`` of private names other modules define (and this one does not)."""
    tree = ast.parse(path.read_text())
    own = _defined_private(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("loadtest"):
            hits += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                continue
            if node.attr in theirs and node.attr not in own:
                hits.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return hits


def test_no_module_touches_another_modules_private_names() -> None:
    private = _loadtest_private_names()
    hits = []
    for name, path in _modules().items():
        theirs = set().union(*(names for other, names in private.items() if other != name))
        hits += _foreign_uses(path, theirs)
    assert hits == []


def test_tests_and_benches_use_public_seams() -> None:
    """(tests/harness is not checked yet: test_units calls loadtest.locust.launcher._finish.)"""
    private = _loadtest_private_names()
    theirs = set().union(*private.values())
    folders = ("session", "mock", "audio", "preflight", "report")
    paths = [p for f in folders for p in sorted((ROOT / "tests" / f).glob("*.py"))]
    paths += sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    paths += sorted((ROOT / "bench" / "harness").glob("*.py"))
    hits = [hit for path in paths for hit in _foreign_uses(path, theirs)]
    assert hits == []


def test_the_private_name_check_sees_a_reach_in(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from loadtest.session.wire import _MASK_KEYS\n\ndef f(t):\n    return t._wire\n")
    assert len(_foreign_uses(sneaky, {"_wire", "_MASK_KEYS"})) == 2
