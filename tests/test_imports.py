"""The package's modules import each other without a cycle: the import graph (every import,
those for type checking and inside functions included) has none, and every module imports on
its own, first, in an interpreter that has no other module of nanny loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

from nanny import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "nanny"


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(), filename=str(path))
    return modules


def _imports(name: str, tree: ast.Module, known: set[str], is_package: bool) -> set[str]:
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:  # `from nanny.ws import hub` imports nanny.ws.hub
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {m for m in found if m in known and m != name}


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    known = set(modules)
    graph = {
        name: _imports(name, tree, known, (PACKAGE / name.replace(".", "/")).is_dir())
        for name, tree in modules.items()
    }
    assert graph["nanny.keys"], "the graph reads the imports"
    # Depth-first search; a module met again while still on the path closes a cycle.
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_every_module_imports_first_on_its_own():
    script = textwrap.dedent(
        """
        import importlib, sys
        failed = []
        for name in sys.argv[1:]:
            for loaded in [m for m in sys.modules if m == "nanny" or m.startswith("nanny.")]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed.append(f"{name}: {exc!r}")
        print("\\n".join(failed))
        """
    )
    names = sorted(_modules())
    result = subprocess.run(
        [sys.executable, "-c", script, *names],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout
