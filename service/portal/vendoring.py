"""Vendored browser packages: fetch a pinned npm version, copy its built files, record checksums.

The portal serves LHC-Forms (npm ``lforms``) from its own static folder, so
``make run`` needs no npm and no network. The browser tests load axe-core the
same way. Each vendored folder holds the package's licence, ``vendor.json``
(package, version, the registry's ``integrity``, the files copied) and
``SHA256SUMS`` (``sha256sum -c`` format).

Update (a developer's machine with npm; nothing here runs at service start)::

    python -m service.portal.vendoring update lforms 40.1.3
    python -m service.portal.vendoring update axe-core 4.14.1
    python -m service.portal.vendoring verify

``npm pack`` downloads the package tarball only: no dependencies are resolved
(``npm install lforms`` stalls on Angular peer dependencies without
``--legacy-peer-deps``) and no install scripts run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from service import PROJECT_ROOT

MANIFEST = "vendor.json"
SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class VendoredPackage:
    name: str
    #: where the files go, relative to the project root
    target: str
    #: tarball path (under ``package/``) -> path inside ``target``
    files: Mapping[str, str]


PACKAGES: dict[str, VendoredPackage] = {
    "lforms": VendoredPackage(
        name="lforms",
        target="service/portal/static/vendor/lforms",
        files={
            "LICENSE.md": "LICENSE.md",
            "dist/lforms/webcomponent/lhc-forms.js": "webcomponent/lhc-forms.js",
            "dist/lforms/webcomponent/styles.css": "webcomponent/styles.css",
            "dist/lforms/webcomponent/assets/lib/zone.min.js": (
                "webcomponent/assets/lib/zone.min.js"
            ),
            "dist/lforms/webcomponent/down_arrow_gray_10_10.png": (
                "webcomponent/down_arrow_gray_10_10.png"
            ),
            "dist/lforms/webcomponent/magnifying_glass.png": "webcomponent/magnifying_glass.png",
            "dist/lforms/fhir/R4/lformsFHIR.min.js": "fhir/R4/lformsFHIR.min.js",
        },
    ),
    "axe-core": VendoredPackage(
        name="axe-core",
        target="tests/browser/vendor/axe-core",
        files={
            "LICENSE": "LICENSE",
            "LICENSE-3RD-PARTY.txt": "LICENSE-3RD-PARTY.txt",
            "axe.min.js": "axe.min.js",
        },
    ),
}


class VendorError(RuntimeError):
    """A vendored folder does not match its manifest, or an update failed."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _integrity(tarball: Path) -> str:
    """npm's ``integrity`` (SRI sha512) of a tarball."""
    digest = hashlib.sha512(tarball.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _npm_pack(name: str, version: str, workdir: Path) -> tuple[Path, str]:
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm is needed to update vendored packages (apt-get install npm)")
    done = subprocess.run(
        [npm, "pack", f"{name}@{version}", "--json", "--pack-destination", str(workdir)],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise VendorError(f"npm pack {name}@{version} failed: {done.stderr.strip()[-2000:]}")
    (info,) = json.loads(done.stdout)
    tarball = workdir / info["filename"]
    if _integrity(tarball) != info["integrity"]:
        raise VendorError(f"{tarball.name}: integrity differs from what the registry announced")
    return tarball, str(info["integrity"])


def update(package: VendoredPackage, version: str, root: Path = PROJECT_ROOT) -> Path:
    """Replace ``package``'s vendored files with those of ``version``; returns the folder."""
    target = root / package.target
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tarball, integrity = _npm_pack(package.name, version, workdir)
        with tarfile.open(tarball) as archive:
            archive.extractall(workdir / "x", filter="data")
        unpacked = workdir / "x" / "package"
        found = json.loads((unpacked / "package.json").read_text(encoding="utf-8"))
        if found.get("version") != version:
            raise VendorError(f"tarball holds {found.get('version')}, not {version}")
        if target.exists():
            shutil.rmtree(target)
        for source, destination in package.files.items():
            out = target / destination
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(unpacked / source, out)
    manifest = {
        "package": package.name,
        "version": version,
        "integrity": integrity,
        "update": f"python -m service.portal.vendoring update {package.name} <version>",
        "files": {f"package/{src}": dst for src, dst in package.files.items()},
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    sums = [f"{sha256_file(target / dst)}  {dst}" for dst in sorted(package.files.values())]
    (target / SUMS).write_text("\n".join(sums) + "\n", encoding="utf-8")
    return target


def verify(package: VendoredPackage, root: Path = PROJECT_ROOT) -> str:
    """Check every vendored file against ``SHA256SUMS``; returns the pinned version."""
    target = root / package.target
    manifest_path = target / MANIFEST
    if not manifest_path.is_file():
        raise VendorError(f"{manifest_path}: missing (run the update command in its docstring)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    listed: dict[str, str] = {}
    for line in (target / SUMS).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    expected = set(manifest["files"].values())
    if set(listed) != expected:
        raise VendorError(f"{target / SUMS}: lists {sorted(listed)}, manifest {sorted(expected)}")
    for name, digest in listed.items():
        path = target / name
        if not path.is_file() or sha256_file(path) != digest:
            raise VendorError(f"{path}: missing or its sha256 differs from {SUMS}")
    return str(manifest["version"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.portal.vendoring")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("update", help="vendor a pinned npm version")
    up.add_argument("package", choices=sorted(PACKAGES))
    up.add_argument("version")
    commands.add_parser("verify", help="check every vendored file against SHA256SUMS")
    args = parser.parse_args(argv)
    try:
        if args.command == "update":
            folder = update(PACKAGES[args.package], args.version)
            print(f"{args.package} {args.version} -> {folder.relative_to(PROJECT_ROOT)}")
        else:
            for package in PACKAGES.values():
                print(f"{package.name} {verify(package)}: ok")
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
