"""Browser fixtures: Debian's Chromium driven by Playwright, the service as a real process with
CDS_AUTH on, and a loopback FHIR server standing in for the clinic's.

No browser is downloaded: Playwright is pointed at ``/usr/bin/chromium`` (or
``CHROMIUM_PATH``). Without it the tests fail saying how to install it. Every page
refuses requests to anything but loopback, and each test leaves a screenshot in
``tests/browser/artifacts/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from testkit.fhir_server import FakeFhirStore, fhir_server
from testkit.server import ServerProcess, start_server
from testkit.signing import ClientKey, jwks

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CLINIC_TOKEN = "clinic-secret-token"
EMERGENCY_NUMBER = "999"

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - reported by the fixture below
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium binary, or the run fails saying how to get one (never a skip)."""
    if sync_playwright is None:
        pytest.fail(
            "Playwright for Python is missing: pip install -e '.[test]' (make install)",
            pytrace=False,
        )
    if not CHROMIUM.is_file():
        pytest.fail(
            f"No Chromium at {CHROMIUM}: the browser tests need Debian's Chromium. Install it "
            "with `apt-get install -y chromium` (.ci/run does), or set CHROMIUM_PATH to a "
            "Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium: Path, portal_server: ServerProcess) -> Iterator[Browser]:
    """Launched after the server and closed before it stops (no keep-alive left open)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def clinic() -> Iterator[tuple[FakeFhirStore, str]]:
    """The clinic's FHIR server: it stores the QuestionnaireResponses the portal sends."""
    store = FakeFhirStore()
    with fhir_server(store) as base:
        yield store, base


@pytest.fixture(scope="session")
def portal_server(
    chromium: Path,
    database_url: str,
    clinic: tuple[FakeFhirStore, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """``backpain-cds serve`` with client authentication ON (a trusted EHR key only)."""
    tmp = tmp_path_factory.mktemp("portal")
    issuers = tmp / "trusted-issuers.json"
    ehr = ClientKey.es384("ehr-1")
    issuers.write_text(json.dumps({"issuers": [{"iss": "https://ehr.test", "jwks": jwks(ehr)}]}))
    server = start_server(
        tmp,
        {
            "DATABASE_URL": database_url,
            "CDS_AUTH": "on",
            "CDS_TRUSTED_ISSUERS": str(issuers),
            "EMERGENCY_NUMBER": EMERGENCY_NUMBER,
            "PORTAL_FHIR_SERVER": clinic[1],
            "PORTAL_FHIR_TOKEN": CLINIC_TOKEN,
            "PORTAL_DELIVERY_ATTEMPTS": "2",
            "PORTAL_RATE_BURST": "500",
        },
    )
    yield server
    server.stop()


@dataclass
class Watched:
    """What a page did that a test may check."""

    page: Page
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    #: every QuestionnaireResponse the page sent to /intake/screen or /intake/submit
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def open(self, path: str = "/intake") -> Page:
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector("body[data-form-ready=true]", timeout=20_000)
        return self.page


def _watch(context: BrowserContext, base_url: str, page: Page) -> Watched:
    watched = Watched(page, base_url)
    page.on(
        "console",
        lambda message: (
            watched.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: watched.console_errors.append(str(error)))

    def route(handled: Any) -> None:
        url = handled.request.url
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost") and not url.startswith(
            ("data:", "blob:")
        ):
            watched.outside_requests.append(url)
            handled.abort()
            return
        if handled.request.method == "POST" and "/intake/" in url:
            body = handled.request.post_data
            watched.sent.append((urlsplit(url).path, json.loads(body) if body else {}))
        handled.continue_()

    context.route("**/*", route)
    return watched


def _artifact_name(request: pytest.FixtureRequest) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in request.node.name)


@pytest.fixture
def patient(
    browser: Browser, portal_server: ServerProcess, request: pytest.FixtureRequest
) -> Iterator[Watched]:
    """A patient's browser tab on the portal (1100x900, en-US); a screenshot at the end."""
    context = browser.new_context(
        viewport={"width": 1100, "height": 900}, locale="en-US", accept_downloads=True
    )
    page = context.new_page()
    watched = _watch(context, portal_server.base_url, page)
    yield watched
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{_artifact_name(request)}.png"), full_page=True)
    context.close()


@pytest.fixture
def auditor(browser: Browser, portal_server: ServerProcess) -> Iterator[Watched]:
    """A tab where axe-core may be injected (the page's CSP allows no script but its own)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=True)
    page = context.new_page()
    yield _watch(context, portal_server.base_url, page)
    context.close()
