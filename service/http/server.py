"""Running a WSGI app under gunicorn with the service's settings.

One place computes the gunicorn options (the settings file, then the
environment through ``Settings``, then the command line), so
``backpain-cds serve`` and the benchmark's floor app run under exactly the
same server configuration.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from typing import Any

from service.config import Settings


def gunicorn_options(
    settings: Settings,
    host: str,
    port: int,
    workers: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.gunicorn_config.is_file():
        loaded = runpy.run_path(str(settings.gunicorn_config))
        options.update({k: v for k, v in loaded.items() if not k.startswith("_")})
    options["bind"] = [f"{host}:{port}"]
    options["workers"] = workers or settings.web_concurrency or options.get("workers", 2)
    options["threads"] = threads or settings.gunicorn_threads or options.get("threads", 4)
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
