"""`chatwatch run`: start the Streamlit app in this process.

The process's `Runtimes` (and with it the Prometheus exporter) and the app runtime are
built here, before the Streamlit server starts: /metrics serves, and the store, models and
alerts are up, before any browser connects. The pages use that same `Runtimes`
(`Runtimes.serve()`); it is closed when the server stops.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from chatwatch.config import ENV_VAR, load


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("run", help="start the Streamlit app")
    common(p)
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="localhost")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    settings = load(args.config)  # validate before starting the server
    import streamlit as st

    from chatwatch.runtime import Runtimes

    if settings.source:
        os.environ[ENV_VAR] = str(settings.source)
    app = Path(__file__).parent.parent / "ui" / "app.py"
    with Runtimes(settings.prometheus) as runtimes, runtimes.serve():
        runtimes.get(settings, role="app")
        if runtimes.exporter is not None:
            print(f"chatwatch: metrics on {runtimes.exporter.url}", flush=True)
        print(f"chatwatch: http://localhost:{args.port}  (model: {settings.default_model.id})", flush=True)
        st.App(str(app)).run(
            config={
                "server.port": args.port,
                "server.address": args.address,
                "server.headless": True,
                "browser.gatherUsageStats": False,
                "runner.magicEnabled": False,  # a bare expression in a page must never render itself
            }
        )
    return 0
