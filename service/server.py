"""Running a WSGI app under gunicorn with the service's settings.

One place computes the gunicorn options (``deploy/gunicorn.conf.py``, then the
environment, then the command line), so ``backpain-cds serve`` and the
benchmark's floor app run under exactly the same server configuration.
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service import PROJECT_ROOT

#: Gunicorn settings file used unless GUNICORN_CONFIG names another.
DEFAULT_GUNICORN_CONFIG = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"


def gunicorn_options(
    host: str, port: int, workers: int | None = None, threads: int | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    config_path = Path(os.environ.get("GUNICORN_CONFIG") or DEFAULT_GUNICORN_CONFIG)
    if config_path.is_file():
        loaded = runpy.run_path(str(config_path))
        options.update({k: v for k, v in loaded.items() if not k.startswith("_")})
    options["bind"] = [f"{host}:{port}"]
    env = os.environ
    options["workers"] = workers or int(env.get("WEB_CONCURRENCY", options.get("workers", 2)))
    options["threads"] = threads or int(env.get("GUNICORN_THREADS", options.get("threads", 4)))
    return options


def run_gunicorn(options: dict[str, Any], load: Callable[[], Any]) -> None:
    """Serve the app ``load()`` returns; ``load`` runs in each worker, after the fork."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return load()

    _Server().run()
