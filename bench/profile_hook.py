"""A pyinstrument profile of hook calls, in process, with auth and audit on.

The app is the one ``create_app`` builds (real JWT verification, real PostgreSQL
audit); requests go through Flask's test client, so the profile shows the service's
own work without the socket and gunicorn layers. One call is too short to sample
well, so ``calls`` calls are profiled together (the tree's times are per call / calls).
"""

from __future__ import annotations

import gc
import time
import uuid
from pathlib import Path
from typing import Any

from bench.auth import BenchClient
from bench.gc_pauses import watched
from bench.workload import SERVICE_ID, Workload
from service.config import Settings

PUBLIC_URL = "http://bench.invalid"


def profile(
    database_url: str,
    client: BenchClient,
    issuers_file: Path,
    workload: Workload,
    out_dir: Path,
    spool_dir: Path,
    *,
    calls: int = 300,
    alg: str = "ES384",
) -> dict[str, Any]:
    from pyinstrument import Profiler

    from service.app import create_app

    settings = Settings(
        database_url=database_url,
        auth_enabled=True,
        public_url=PUBLIC_URL,
        trusted_issuers_file=issuers_file,
        spool_dir=spool_dir,
    )
    app = create_app(settings)
    path = f"/cds-services/{SERVICE_ID}"
    total = 2 * calls + 20
    tokens = client.tokens(alg, PUBLIC_URL + path, total)
    bodies = [workload.concrete(str(uuid.uuid4())) for _ in range(total)]
    http = app.test_client()

    def call(i: int) -> None:
        response = http.post(path, json=bodies[i], headers={"Authorization": f"Bearer {tokens[i]}"})
        if response.status_code != 200:
            raise RuntimeError(f"profile: hook answered {response.status_code}: {response.text}")

    for i in range(2 * calls, total):  # warm up: first-request work is not the steady state
        call(i)
    gc.freeze()  # as deploy/gunicorn.conf.py does once the worker has loaded the app
    with watched() as pauses:
        start, cpu_start = time.perf_counter(), time.process_time()
        for i in range(calls, 2 * calls):  # timed without the profiler
            call(i)
        wall_ms = (time.perf_counter() - start) / calls * 1000
        cpu_ms = (time.process_time() - cpu_start) / calls * 1000
    gc.unfreeze()
    profiler = Profiler(interval=0.001)
    profiler.start()
    for i in range(calls):
        call(i)
    profiler.stop()
    html = out_dir / "profile.html"
    text = out_dir / "profile.txt"
    html.write_text(profiler.output_html(), encoding="utf-8")
    text.write_text(
        f"pyinstrument: {calls} hook calls ({workload.title}), auth {alg} + audit on PostgreSQL,\n"
        f"in process (Flask test client). Divide times by {calls} for one call.\n\n"
        + profiler.output_text(unicode=True, color=False, show_all=False),
        encoding="utf-8",
    )
    runtime = app.extensions["backpain_cds"]
    runtime.audit.close()
    return {
        "calls": calls,
        "wall_ms_per_call": wall_ms,
        "cpu_ms_per_call": cpu_ms,
        "gc": pauses.summary(calls),
        "html": str(html.relative_to(out_dir.parent.parent)),
        "text": str(text.relative_to(out_dir.parent.parent)),
    }
