"""The packages' layering, read from every import in the source (function-level ones too):
``hardware`` is data only and imports nothing above it; ``measure`` may use ``hardware`` but
never ``serve``; ``serve`` (the board's server) sits on ``measure``. A hidden cycle between
them (an import inside a function) fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import hwcompress

PACKAGE = Path(hwcompress.__file__).parent
#: What each package may import from hwcompress besides itself.
ALLOWED = {
    "hardware": {"errors", "enums"},
    "measure": {"errors", "fmt", "files", "fx", "hardware", "arch", "export"},
    "serve": {"errors", "fmt", "files", "hardware", "measure", "__init__"},
}


def _imports(path: Path) -> set[str]:
    """The hwcompress modules ``path`` imports, anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hwcompress"))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "hwcompress":  # a submodule, or a name of the package itself
                found.update(
                    f"hwcompress.{a.name}"
                    if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file()
                    else "hwcompress"
                    for a in node.names
                )
            elif node.module.startswith("hwcompress."):
                found.add(node.module)
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_layers_import_only_downwards():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for module in _imports(path):
                top = _top(module)
                if top != package and top not in allowed:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_hardware_measure_and_serve():
    edges = {
        package: {_top(m) for p in (PACKAGE / package).rglob("*.py") for m in _imports(p)}
        - {package}
        for package in ALLOWED
    }
    for a in ALLOWED:
        for b in edges[a] & set(ALLOWED):
            assert a not in edges[b], f"{a} and {b} import each other"


def _module_name(path: Path) -> str:
    parts = list(path.with_suffix("").relative_to(PACKAGE.parent).parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_itself_through_others():
    """No circle among the package's modules, counting every import: inside functions and
    under ``TYPE_CHECKING`` too (a stage sees its run through a protocol defined below both,
    latency sources and the table share the provenance module, and so on)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names if a.name.startswith("hwcompress")}
            elif (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("hwcompress")
            ):
                for a in node.names:  # ``from pkg import submodule`` names the submodule
                    full = f"{node.module}.{a.name}"
                    targets.add(full if full in modules else resolve(str(node.module)))
        edges[name] = targets - {name, ""}

    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(" → ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name)
    assert not circles, "\n".join(circles)


def test_no_module_is_over_400_lines():
    """Modules are split along their seams before they grow past 400 lines."""
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in sorted(PACKAGE.rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long, f"split these modules along their seams: {long}"
