"""Imports go only downward: cli → flows, api, sql, models; flows → sql, models; api → sql.

sql and models depend on nothing of ours; testing (the local provider server, seeded data) may
import anything but only tests and benchmarks import it. Every import statement counts,
including the lazy ones inside functions, because a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "streetaudit"

# layer -> the layers of ours it may import (itself included). `""` is the top-level __init__.
ALLOWED: dict[str, set[str] | None] = {
    "": {""},
    "cli": {"", "cli", "flows", "api", "sql", "models"},
    "flows": {"", "flows", "sql", "models"},
    "api": {"", "api", "sql"},
    "sql": {"", "sql"},
    "models": {"", "models"},
    "testing": None,  # anything
}
NOT_PACKAGE = {"tests", "bench", "node_modules", "data"}


def package_modules() -> list[Path]:
    files = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in NOT_PACKAGE or any(p.startswith(".") for p in parts):
            continue
        files.append(path)
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def imported_modules(source: str, name: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) for every import statement in the source, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from streetaudit import flows` imports streetaudit.flows: count the names too
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def layer_of(module: str) -> str | None:
    """The layer of one of our modules ("" for the package itself), None for someone else's."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1 or parts[1] not in ALLOWED:
        return ""
    return parts[1]


MODULES = package_modules()


def test_the_walk_sees_every_layer():
    layers = {layer_of(module_name(p)) for p in MODULES}
    assert layers == set(ALLOWED), layers
    assert len(MODULES) > 50


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_imports_only_go_downward(path):
    wrong = wrong_arrows(path.read_text(), module_name(path), path.name == "__init__.py")
    assert not wrong, "\n".join(f"{path.relative_to(ROOT)}:{arrow}" for arrow in wrong)


def wrong_arrows(source: str, name: str, is_package: bool = False) -> list[str]:
    here = layer_of(name) or ""
    allowed = ALLOWED[here]
    if allowed is None:
        return []
    return [
        f"{line} imports {target} ({here or PACKAGE} → {layer_of(target) or PACKAGE})"
        for line, target in imported_modules(source, name, is_package)
        if layer_of(target) is not None and layer_of(target) not in allowed
    ]


def test_the_check_would_catch_an_upward_import():
    """The walk must be able to fail: lazy, relative and `from streetaudit import x` arrows are all seen."""
    source = (
        "from streetaudit.flows import points\n"
        "from . import collect\n"
        "def f():\n"
        "    from streetaudit.api import app\n"
        "    import streetaudit.testing.local_server\n"
        "    from ..cli import main\n"
        "    from streetaudit import api\n"
    )
    wrong = wrong_arrows(source, "streetaudit.flows.probe")
    assert [arrow.split(" ", 1)[0] for arrow in wrong] == ["4", "5", "6", "7"], wrong
    assert wrong_arrows("from streetaudit.flows import points\n", "streetaudit.sql.probe")
    assert not wrong_arrows("from streetaudit.api import app\n", "streetaudit.testing.probe")
