"""The package's architecture: no import loops, no block of code standing twice."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "bilinear_core"
MIN_LINES = 6


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """Every import of a package module by another, including imports inside functions (``a -> b``)."""
    modules = _sources()
    graph = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE.name):
                candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names if alias.name.startswith(PACKAGE.name)]
            else:
                continue
            for target in candidates:
                # importing a.b.c runs a.b's __init__ too; the root package is excluded (it imports everything)
                parts = target.split(".")
                for i in range(2, len(parts) + 1):
                    dep = ".".join(parts[:i])
                    if dep in modules and dep != name and not name.startswith(dep + "."):
                        graph[name].add(dep)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as a list of modules, or ``None``."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_follows_relative_imports_and_package_inits():
    graph = import_graph()
    assert "bilinear_core.checks" in graph["bilinear_core.train"]
    assert "bilinear_core.datasets.genesets" in graph["bilinear_core.enrichment"]
    assert "bilinear_core.datasets" in graph["bilinear_core.enrichment"]  # the package's __init__ runs too


def test_no_import_loops():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import loop: {' -> '.join(cycle)}"


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the code lines: no blank lines, comments or docstrings."""
    source = path.read_text()
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstring_lines.update(range(first.lineno, first.end_lineno + 1))
    return [
        (i, line.strip())
        for i, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#") and i not in docstring_lines
    ]


def repeated_blocks(paths, root: Path, min_lines: int = MIN_LINES) -> list[tuple[str, str]]:
    """Places (``file:line``, relative to ``root``) where the same ``min_lines`` code lines stand again.

    One pair per repeated run: overlapping windows of a longer run are reported once.
    """
    seen, pairs, previous = {}, [], None
    for path in paths:
        name, lines = path.relative_to(root).as_posix(), _code_lines(path)
        for start in range(len(lines) - min_lines + 1):
            window = tuple(text for _, text in lines[start : start + min_lines])
            if sum(len(text) > 3 for text in window) < min_lines // 2:  # runs of closing brackets are not code
                continue
            if window not in seen:
                seen[window] = (name, start, lines[start][0])
                continue
            first_name, first_start, first_line = seen[window]
            if previous != (first_name, first_start - 1, name, start - 1):  # not the continuation of a run
                pairs.append((f"{first_name}:{first_line}", f"{name}:{lines[start][0]}"))
            previous = (first_name, first_start, name, start)
    return pairs


def test_repeated_blocks_finds_a_planted_copy(tmp_path):
    block = "\n".join(f"    total_{i} = compute(value_{i}, other_{i})" for i in range(MIN_LINES + 2))
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(f'def f():\n    """Doc."""\n{block}\n')
    b.write_text(f"def g():\n    # comment\n{block}\n    return 1\n")
    assert repeated_blocks([a, b], tmp_path) == [("a.py:3", "b.py:3")]  # one pair for the 8-line run
    assert repeated_blocks([a], tmp_path) == []


def test_no_block_of_code_stands_twice_in_the_package():
    pairs = repeated_blocks(sorted(PACKAGE.rglob("*.py")), PACKAGE.parent)
    assert not pairs, "repeated code blocks: " + "; ".join(f"{a} ~ {b}" for a, b in pairs)
