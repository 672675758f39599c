"""The vendored browser packages are the pinned versions, byte for byte (SHA256SUMS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service import PROJECT_ROOT
from service.portal.vendoring import PACKAGES, VendorError, verify


@pytest.mark.parametrize("name, version", [("lforms", "40.1.3"), ("axe-core", "4.14.1")])
def test_vendored_files_match_their_pinned_checksums(name: str, version: str) -> None:
    assert verify(PACKAGES[name]) == version
    folder = PROJECT_ROOT / PACKAGES[name].target
    assert any(path.name.startswith("LICENSE") for path in folder.iterdir())


def test_a_changed_file_is_caught(tmp_path: Path) -> None:
    package = PACKAGES["axe-core"]
    copy = tmp_path / package.target
    copy.mkdir(parents=True)
    source = PROJECT_ROOT / package.target
    for path in source.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert verify(package, root=tmp_path) == "4.14.1"
    (copy / "axe.min.js").write_text("/* not axe */")
    with pytest.raises(VendorError, match=r"axe\.min\.js"):
        verify(package, root=tmp_path)


def test_the_manifest_records_the_registry_integrity() -> None:
    manifest = json.loads(
        (PROJECT_ROOT / PACKAGES["lforms"].target / "vendor.json").read_text(encoding="utf-8")
    )
    assert manifest["integrity"].startswith("sha512-")
    assert "python -m service.portal.vendoring update lforms" in manifest["update"]
