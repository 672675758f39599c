"""The README's and the guides' commands work as written.

Every fenced ``sh`` block of README.md, docs/*.md and tests/samples/README.md is run,
in order, in a scratch folder that holds links to the repository's folders (so
``tests/samples/...``, ``deploy/...`` and ``.venv/bin/...`` resolve and
``var/`` is the scratch folder's own):

- ``make run`` and ``... backpain-cds serve ...`` start a real server process (gunicorn)
  with the environment the command gives, on a free port that replaces ``8080`` in the
  commands after it; a ``curl`` with no server started first gets ``make run``'s;
- ``make test``/``make bench``/``make install``, ``docker``/``kubectl``/``git clone`` and
  the portal's vendoring ``update`` are not run (``make test`` is this suite; the
  others need what CI lacks, or rewrite the repository);
- every other command runs with bash (``set -euo pipefail``, so a failing ``curl |
  python3 -m json.tool`` fails) and must exit 0 without an OperationOutcome in its
  output, unless the block names one.

Also: the generated reference tables in docs/ equal their commands' output, and every
relative link resolves.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main
from testkit.server import ROOT, ServerProcess, clean_env, free_port, serve_args, start_process

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "tests" / "samples" / "README.md",
]
NOT_RUN = (
    "make test",
    "make bench",
    "make install",
    "docker ",
    "kubectl ",
    "git clone",
    # downloads a release from npm and rewrites the vendored files of the repository
    ".venv/bin/python -m service.portal.vendoring update",
)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DEFAULT_PORT = "8080"


def sh_blocks(text: str) -> list[str]:
    return [body for language, body in FENCE.findall(text) if language == "sh"]


def commands(block: str) -> list[str]:
    """One string per command: continuation lines joined, blank and comment lines dropped."""
    joined = re.sub(r"\\\n", " ", block)
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def assignments_and_rest(command: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(command, comments=True)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


@dataclass
class DocRunner:
    """Runs one document's commands in a scratch folder."""

    folder: Path
    logs: Path
    server: ServerProcess | None = None
    port: str = DEFAULT_PORT
    pending: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return clean_env({"PATH": os.environ.get("PATH", "")})

    def absolute(self, env: dict[str, str]) -> dict[str, str]:
        """Relative paths in a server's environment, made absolute in the scratch folder."""
        fixed = {}
        for name, value in env.items():
            value = value.replace(f":{DEFAULT_PORT}", f":{self.port}")
            if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
                value = f"sqlite:///{self.folder}/{value.removeprefix('sqlite:///')}"
            elif value and not value.startswith("/") and (self.folder / value).exists():
                value = str(self.folder / value)
            fixed[name] = value
        return fixed

    def start(self, env: dict[str, str]) -> None:
        self.stop()
        self.port = str(free_port())
        full = {
            **self.env(),
            "CDS_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "AUDIT_SPOOL_DIR": str(self.folder / "var" / "spool"),
            **self.absolute(env),
        }
        self.server = start_process(
            "doc-server", serve_args(int(self.port)), int(self.port), full, self.logs
        )

    def start_make_run(self) -> None:
        """What ``make run`` does: migrate the local SQLite database, serve with auth off."""
        (self.folder / "var").mkdir(exist_ok=True)
        env = {"DATABASE_URL": "sqlite:///var/audit.sqlite3", "CDS_AUTH": "off"}
        self.run_script([".venv/bin/backpain-cds db upgrade"], env)
        self.start(env)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def run_script(self, lines: list[str], extra: dict[str, str] | None = None) -> str:
        script = "\n".join(["set -euo pipefail", *lines])
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.folder,
            env={**self.env(), **(extra or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        shown = f"$ {script}\n{done.stdout}{done.stderr}"
        assert done.returncode == 0, shown
        return done.stdout + done.stderr

    def flush(self, block: str) -> None:
        if not self.pending:
            return
        output = self.run_script(self.pending)
        self.pending = []
        if "OperationOutcome" not in block:
            assert "OperationOutcome" not in output, output

    def run_block(self, block: str) -> None:
        for command in commands(block):
            if command.startswith(NOT_RUN):
                continue
            env, words = assignments_and_rest(command)
            if words[:2] == ["make", "run"]:
                self.flush(block)
                self.start_make_run()
                continue
            if words and words[0].endswith("backpain-cds") and "serve" in words[1:2]:
                self.flush(block)
                self.start(env)
                continue
            needs_server = f":{DEFAULT_PORT}" in command and command.lstrip().startswith("curl")
            if needs_server and self.server is None:
                self.flush(block)
                self.start_make_run()
            self.pending.append(command.replace(f":{DEFAULT_PORT}", f":{self.port}"))
        self.flush(block)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A folder that looks like the repository: links to its folders, its own var/."""
    folder = tmp_path / "repo"
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {".venv", "var", ".git"}:
            (folder / entry.name).symlink_to(entry)
    (folder / ".venv").symlink_to(Path(sys.prefix))  # the virtualenv running the tests
    return folder


WITH_COMMANDS = [doc for doc in DOCS if sh_blocks(doc.read_text(encoding="utf-8"))]


def test_the_guides_with_commands_are_all_run() -> None:
    names = {str(doc.relative_to(ROOT)) for doc in WITH_COMMANDS}
    assert names >= {
        "README.md",
        "docs/writing-rules.md",
        "docs/your-own-form.md",
        "docs/connecting.md",
        "docs/signed-calls.md",
        "tests/samples/README.md",
    }


@pytest.mark.parametrize(
    "doc", WITH_COMMANDS, ids=[str(d.relative_to(ROOT)) for d in WITH_COMMANDS]
)
def test_the_documents_commands_work_as_written(doc: Path, scratch: Path, tmp_path: Path) -> None:
    blocks = sh_blocks(doc.read_text(encoding="utf-8"))
    runner = DocRunner(scratch, tmp_path)
    try:
        for block in blocks:
            runner.run_block(block)
    finally:
        runner.stop()


# -- generated reference tables, links -----------------------------------------------------

GENERATED = re.compile(
    r"<!-- generated by `backpain-cds ([a-z ]+)`[^>]*-->\n(.*?)<!-- end of generated text -->",
    re.DOTALL,
)


def generated_sections() -> Iterator[tuple[Path, str, str]]:
    for doc in DOCS:
        for command, body in GENERATED.findall(doc.read_text(encoding="utf-8")):
            yield doc, command, body


def test_generated_tables_equal_their_commands_output() -> None:
    found = list(generated_sections())
    assert {command for _, command, _ in found} >= {"rules vocabulary", "rules concepts"}
    for doc, command, body in found:
        result = CliRunner().invoke(main, command.split())
        assert result.exit_code == 0, result.output
        assert body == result.output, f"{doc.name}: regenerate with `backpain-cds {command}`"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_relative_link_resolves(doc: Path) -> None:
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
