"""`chatwatch run`: start the Streamlit app in this process."""

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

    if settings.source:
        os.environ[ENV_VAR] = str(settings.source)
    app = Path(__file__).parent.parent / "ui" / "app.py"
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
