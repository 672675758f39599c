"""docs/architecture.md names every package and top-level module of service/ (it stays
the one page a newcomer reads), and the engine imports only the standard library."""

from __future__ import annotations

from service import PROJECT_ROOT

DOC = (PROJECT_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
SERVICE = PROJECT_ROOT / "service"


def test_every_package_and_top_level_module_is_on_the_page() -> None:
    parts = [p for p in SERVICE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    parts += [p for p in SERVICE.glob("*.py") if p.name != "__init__.py"]
    missing = [
        p.name for p in parts if f"service/{p.name}/" not in DOC and f"service/{p.name}" not in DOC
    ]
    assert not missing, f"docs/architecture.md does not name {missing}"
