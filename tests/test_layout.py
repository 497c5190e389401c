"""The house rules of ../shared/ARCHITECTURE.md, checked on the source: imports only go down the
stages, no import circle (lazy imports inside functions count too), no module reads another
module's private names, and no file or function grows past the size the style guide allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# folder -> package, as pyproject.toml's package-dir maps them
PACKAGES = {
    "rnnedge": "rnnedge",
    "export": "rnnedge.export",
    "quantize": "rnnedge.quantize",
    "runtime": "rnnedge.runtime",
    "boards": "rnnedge.boards",
}
# The stages, bottom first. A module may import its own stage or a lower one, never a higher
# one. rnnedge.errors/version/progress are the leaves everything may use; boards/bench is what
# runs on a board (runtime only), boards/peers and boards/sweeps are x86 tools that need torch.
STAGES = [
    ("leaf", ("rnnedge.errors", "rnnedge.version", "rnnedge.progress")),
    ("runtime", ("rnnedge.runtime",)),
    ("quantize", ("rnnedge.quantize",)),
    ("board", ("rnnedge.boards.bench", "rnnedge.boards.profiles", "rnnedge.boards.cost")),
    ("export", ("rnnedge.export",)),
    ("x86 boards", ("rnnedge.boards.peers", "rnnedge.boards.sweeps")),
    ("hub", ("rnnedge",)),
]
# export never reads boards/, and the board side never reaches the export stage
FORBIDDEN = [("rnnedge.export", "rnnedge.boards"), ("rnnedge.boards.bench", "rnnedge.export")]
# third-party private names with no public equivalent: argparse's subparsers type (for hints),
# torch's core-ATen decomposition table (torch.export's documented route to core ATen), and
# LiteRT's op listing (the x86 peers report which kernels a file really runs)
THIRD_PARTY_PRIVATE = {
    "_SubParsersAction",
    "_decomp",
    "_get_ops_details",
    "_get_full_signature_list",
}
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            if "arm64" in path.parts:  # scripts copied into the emulated root, not modules
                continue
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The rnnedge module an import names: `rnnedge.x.y.z` may be a module or a name in one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, tree: ast.Module) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("rnnedge") else None
            if target and target != module:
                out.add(target)
    return out


def _trees() -> dict[str, ast.Module]:
    return {m: ast.parse(p.read_text(), str(p)) for m, p in MODULES.items()}


TREES = _trees()
GRAPH = {m: _imports(m, t) for m, t in TREES.items()}


def _stage(module: str) -> int:
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(STAGES):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    return level


def test_every_module_has_a_stage() -> None:
    assert [m for m in MODULES if _stage(m) < 0] == []


def test_imports_only_go_down_the_stages() -> None:
    upward = [
        f"{m} ({STAGES[_stage(m)][0]}) imports {t} ({STAGES[_stage(t)][0]})"
        for m, targets in GRAPH.items()
        for t in targets
        if _stage(t) > _stage(m) or any(m.startswith(a) and t.startswith(b) for a, b in FORBIDDEN)
    ]
    assert upward == []


def test_no_import_circles() -> None:
    # a package's __init__ importing its own submodules is how a package exposes them, not a
    # circle; every other cycle, lazy or not, is one
    def edges(m: str) -> set[str]:
        return {t for t in GRAPH[m] if not m.startswith(t + ".")}

    cycles, done, path = [], set(), []

    def visit(m: str) -> None:
        if m in path:
            cycles.append(" -> ".join([*path[path.index(m) :], m]))
            return
        if m in done:
            return
        path.append(m)
        for t in sorted(edges(m)):
            visit(t)
        path.pop()
        done.add(m)

    for m in sorted(GRAPH):
        visit(m)
    assert cycles == []


def _private_reads(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnedge"):
            found += [f"from {node.module} import {a.name}" for a in node.names if _private(a.name)]
        elif (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and node.attr not in THIRD_PARTY_PRIVATE
        ):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{ast.unparse(owner)}.{node.attr} (line {node.lineno})")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reads_another_modules_private_names() -> None:
    reads = {m: r for m, t in TREES.items() if (r := _private_reads(t))}
    assert reads == {}


def _source_files() -> list[Path]:
    files = list(MODULES.values()) + list((REPO / "tests").rglob("*.py"))
    return sorted(files) + sorted((REPO / "boards" / "arm64").glob("*.py"))


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_files_and_functions_stay_small(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_FILE_LINES, f"{len(lines)} lines"
    long = [
        f"{f.name} ({f.end_lineno - f.lineno + 1} lines)"
        for f in ast.walk(ast.parse("\n".join(lines)))
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
