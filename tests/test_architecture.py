"""The rules the package's layout keeps (docs/development.md, "Where things live"): no module
imports another's private names, no two modules import each other however far round (a lazy
import inside a function counts; one only a type checker reads does not), and no module is much
over 600 lines. Read from the source with ast, not from what an import happens to load."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "smjac"
MOST_LINES = 600


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            inside |= {id(n) for branch in node.body for n in ast.walk(branch)}
    return inside


def imports(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], list[str]]:
    """The package's modules ``name`` imports, and the private names it takes from another."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = type_checking_only(tree)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    private = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    found.add(f"{source}.{alias.name}")
                elif source in known:
                    found.add(source)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{name} imports {source}.{alias.name}")
    return found - {name}, private


def test_the_reader_sees_the_imports_it_should():
    # the checks below are only as good as this reading of the source: a few edges known by hand
    known = modules()
    results = imports("smjac.outputs.results", known["smjac.outputs.results"], known)[0]
    assert {
        "smjac.maths",
        "smjac.notation",
        "smjac.formats.document",
    } <= results  # from .. import; from ..x.y import
    assert {"smjac.errors", "smjac.maths.numeric"} <= imports(
        "smjac.maths.layer", known["smjac.maths.layer"], known
    )[0]
    lazy = imports("smjac", known["smjac"], known)[0]
    assert lazy == {"smjac.errors"}  # the rest of smjac/__init__ is under TYPE_CHECKING or by name


def test_no_module_imports_another_s_private_names():
    known = modules()
    private = [line for name, path in known.items() for line in imports(name, path, known)[1]]
    assert private == []


def test_no_import_circles():
    known = modules()
    edges = {name: imports(name, path, known)[0] for name, path in known.items()}
    circles = []
    for start in edges:  # a path from each module back to itself, by depth-first search
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    circles.append(" → ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert circles == []


def test_no_module_is_much_over_600_lines():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in modules().values()
        if (n := len(p.read_text().splitlines())) > MOST_LINES
    }
    assert long == {}
