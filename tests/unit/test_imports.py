"""The library's import graph: one direction, no Streamlit, nothing from benchmarks or tests.

Every import statement counts, including the ones inside functions (a late import is still an
edge: it only hides the cycle from the interpreter, not from the reader)."""

import ast
from pathlib import Path

import pytest

import mnist_core

PACKAGE = Path(mnist_core.__file__).parent
FORBIDDEN = ("streamlit", "benchmarks", "tests", "support", "pages", "app")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module an mnist_core file imports, anywhere in it, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                found.add(target)
                if node.module is None:  # from . import x: x is a module of the package
                    found.update(f"{target}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module or "")
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in files and m != name and m != "mnist_core"}
        for name, path in files.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walker_sees_late_and_relative_imports(tmp_path):
    f = tmp_path / "mod.py"
    f.write_text(
        "from .config import X\ndef f():\n    from .models import build_model\n    import streamlit\n"
    )
    fake = PACKAGE / "learn" / "_walker_probe.py"
    try:
        fake.write_text(f.read_text())
        assert {"mnist_core.learn.config", "mnist_core.learn.models", "streamlit"} <= imports_of(fake)
    finally:
        fake.unlink()


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    assert find_cycle(graph()) is None, f"import cycle: {' -> '.join(find_cycle(graph()) or [])}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_library_imports_no_ui_benchmarks_or_tests(path):
    bad = sorted(m for m in imports_of(path) if m.split(".")[0] in FORBIDDEN)
    assert not bad, f"{module_name(path)} imports {bad}"


def test_the_worker_does_not_import_the_job_manager():
    """The next-run hand-off belongs to the executor; the worker never reaches up to jobs.py."""
    assert "mnist_core.jobs.manager" not in imports_of(PACKAGE / "jobs" / "worker.py")


# The wings, bottom first: a module may import its own wing and the wings below it, never one above.
# The floor (paths, versions, words) is below every wing; the entry points (cli, warmup) above them.
FLOOR = ("paths", "versions", "words")
WINGS = ("data", "learn", "analysis", "figures", "jobs", "lessons")
TOP = ("cli", "warmup", "__main__")


def level(module: str) -> int:
    """The rank of a module of mnist_core: 0 the floor, 1.. the wings in order, then the entry points."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else ""
    if head in FLOOR or not head:
        return 0
    if head in WINGS:
        return 1 + WINGS.index(head)
    assert head in TOP, f"{module} belongs to no wing: add it to FLOOR, WINGS or TOP"
    return 1 + len(WINGS)


def wing_violations(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, deps in edges.items() for b in deps if level(b) > level(a))


def test_every_module_sits_in_a_wing():
    for name in graph():
        level(name)


def test_wings_import_only_downwards():
    assert wing_violations(graph()) == []


def test_the_wing_check_finds_an_upward_import():
    assert wing_violations({"mnist_core.data.mnist": {"mnist_core.jobs.store"}}) == [
        "mnist_core.data.mnist -> mnist_core.jobs.store"
    ]
    assert wing_violations({"mnist_core.jobs.store": {"mnist_core.data.mnist"}}) == []
