"""The peer: HealthChain's minimal CDS Hooks service (one fixed card, no validation).

What issue 15 compared against: a Python framework's no-op card. Served by gunicorn
with uvicorn workers, as many workers as the service (WEB_CONCURRENCY, default 2).
HealthChain is not a dependency of this project; it runs from its own virtualenv
(it pins fhir.resources < 8.2), made once with::

    python3 -m venv .venv-peer && .venv-peer/bin/pip install healthchain gunicorn

and ``python -m bench --peer healthchain`` finds ``.venv-peer`` (or ``--peer-python``).
This module imports nothing of the service, only HealthChain.

Run: ``.venv-peer/bin/python -m bench.peer_healthchain --port 8098``;
the hook is ``POST /cds/cds-services/<SERVICE_ID>``, health ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

SERVICE_ID = "backpain-redflags-patient-view"
PATH = f"/cds/cds-services/{SERVICE_ID}"


def create_app() -> Any:
    from healthchain.gateway import CDSHooksService, HealthChainAPI  # type: ignore[import-not-found]
    from healthchain.models import CDSRequest, CDSResponse  # type: ignore[import-not-found]

    app = HealthChainAPI()
    cds = CDSHooksService()

    @cds.hook("patient-view", id=SERVICE_ID)  # type: ignore[untyped-decorator]
    def patient_view(request: CDSRequest) -> CDSResponse:
        return CDSResponse(
            cards=[
                {
                    "summary": "Back pain: no red flag checked (peer no-op card)",
                    "indicator": "info",
                    "source": {"label": "HealthChain peer"},
                }
            ]
        )

    app.register_service(cds)

    @app.get("/healthz")  # type: ignore[untyped-decorator]
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    from gunicorn.app.base import BaseApplication

    parser = argparse.ArgumentParser(prog="python -m bench.peer_healthchain")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 2)))
    args = parser.parse_args()
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "worker_class": "uvicorn.workers.UvicornWorker",
        "keepalive": 5,
        "timeout": 30,
        "accesslog": None,
        "loglevel": "warning",
    }

    class Peer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app()

    Peer().run()


if __name__ == "__main__":
    main()
