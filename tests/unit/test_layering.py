"""The layering the code promises, checked on every file's imports (module level and inside
functions, TYPE_CHECKING included): the shared library ``personas`` depends on no service, a
service depends only on ``personas``, the operations package ``infra`` (stack, demo, soak) may
drive services, and only the ``persona`` command (``persona_cli``) knows every package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("producer", "stream_app", "monitor", "trainer", "serving")
PACKAGES = ("persona_cli", "personas", "infra", *SERVICES)

#: package -> the other project packages it may import.
ALLOWED: dict[str, set[str]] = {
    "personas": set(),
    **{service: {"personas"} for service in SERVICES},
    "infra": {"personas", *SERVICES},
    "persona_cli": {"personas"},  # services are loaded by name (importlib), one per command group
}


def project_imports(package: str, root: Path = REPO) -> dict[str, set[str]]:
    """Each other project package ``package`` imports -> the files that do."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    forbidden = {
        other: files
        for other, files in project_imports(package).items()
        if other not in ALLOWED[package]
    }
    assert not forbidden, f"{package} imports {forbidden}"


def test_the_scan_sees_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    """Guard against a scan that cannot fail: nested and TYPE_CHECKING imports are found."""
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "x.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "def f():\n    from monitor.store import claim\n"
        "if TYPE_CHECKING:\n    import trainer.ledger\n"
        "from . import y\nfrom personas import z\n"
    )
    assert project_imports("personas", tmp_path) == {
        "monitor": {"personas/x.py"},
        "trainer": {"personas/x.py"},
    }
