"""What a user gets from ``pip install``: the wheel carries the profiles, the code runs on 3.10."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")

#: Standard-library names that appeared in Python 3.11 or later (the package supports 3.10).
NEWER_THAN_310 = {
    ("datetime", "UTC"): "datetime.timezone.utc",
    ("typing", "Self"): "typing_extensions or a TypeVar",
    ("typing", "LiteralString"): "str",
    ("typing", "Never"): "typing.NoReturn",
    ("typing", "assert_never"): "a plain raise",
    ("typing", "reveal_type"): "nothing",
    ("enum", "StrEnum"): "class X(str, Enum)",
    ("asyncio", "TaskGroup"): "asyncio.gather",
    ("asyncio", "timeout"): "asyncio.wait_for",
    ("hashlib", "file_digest"): "reading the file in chunks",
}
NEWER_MODULES = {"tomllib": "tomli", "wsgiref.types": "typing"}


def _newer_than_310(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
                if a.name in NEWER_MODULES:
                    found.append(f"{path}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in NEWER_MODULES:
                found.append(f"{path}:{node.lineno}: from {node.module}")
            for a in node.names:
                if (node.module, a.name) in NEWER_THAN_310:
                    found.append(f"{path}:{node.lineno}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module is not None and (module, node.attr) in NEWER_THAN_310:
                found.append(f"{path}:{node.lineno}: {module}.{node.attr}")
        elif isinstance(node, ast.TryStar):
            found.append(f"{path}:{node.lineno}: except*")
    return found


def test_the_package_uses_no_python_311_only_api():
    found = [hit for p in sorted((ROOT / "hwcompress").rglob("*.py")) for hit in _newer_than_310(p)]
    assert not found, "the package supports Python 3.10:\n" + "\n".join(found)


def test_the_checker_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import datetime as _dt\nimport tomllib\nx = _dt.UTC\n")
    assert len(_newer_than_310(bad)) == 2


@pytest.mark.slow
def test_the_wheel_ships_the_profiles(tmp_path):
    """Built as pip builds it, installed outside the checkout, run from another folder."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("hwcompress-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    env.pop("HWCOMPRESS_PROFILE_DIR", None)
    code = "import sys, hwcompress.cli as c; print(c.__file__); sys.argv[0] = 'x'; c.main()"

    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    listing = run("profile", "list")
    assert listing.splitlines()[0].startswith(str(site)), "not the installed copy"
    shipped = sorted(p.stem for p in (ROOT / "hwcompress" / "profiles").glob("*.yaml"))
    assert len(shipped) >= 7
    for name in shipped:
        assert name in listing, listing
    assert "Jetson Nano" in run("profile", "show", "jetson_nano.yaml")


def test_mypy_covers_the_whole_package(tmp_path):
    """The package type-checks as a whole (typed code is part of the house style)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("mypy") is None and not Path(sys.executable).with_name("mypy").exists():
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), "hwcompress"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-4000:]
