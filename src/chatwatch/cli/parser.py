"""chatwatch command line: run | ask | models | export | stats | cleanup | check-config | bench.

Start-up cost is part of the interface: `chatwatch --version` and `chatwatch ask` import
neither pandas, plotly, Streamlit nor any benchmark. So every command imports what it needs
inside itself, and `bench` lists the benchmark modules by file name; only the one that runs
is imported, and its own arguments are parsed then.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import pkgutil
import sys
from pathlib import Path

from chatwatch.config import ENV_VAR, ConfigError, Settings, load


def _settings(args) -> Settings:
    return load(args.config)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help=f"TOML config file (default: ${ENV_VAR} or ./chatwatch.toml)")


def cmd_run(args) -> int:
    settings = _settings(args)  # validate before starting the server
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


def cmd_ask(args) -> int:
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.runtime import Runtime

    settings = _settings(args)
    model_cfg = settings.model(args.model) if args.model else settings.default_model
    d = model_cfg.defaults
    generation = GenerationSettings(
        temperature=d.temperature if args.temperature is None else args.temperature,
        top_p=d.top_p if args.top_p is None else args.top_p,
        max_tokens=d.max_tokens if args.max_tokens is None else args.max_tokens,
        seed=d.seed if args.seed is None else args.seed,
    )
    system = args.system if args.system is not None else d.system_prompt
    messages = ([Message("system", system)] if system else []) + [Message("user", args.prompt)]
    failure = None
    with Runtime(settings, role="cli") as runtime:
        reply = runtime.chat(model_cfg.id, messages, generation, session_id="cli", stream=not args.no_stream)
        try:
            for chunk in reply:
                if not args.json:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
        except Exception as exc:  # already recorded by the monitor
            failure = exc
        finally:
            reply.close()
            runtime.monitor.drain()
            runtime.alerts.flush(10)  # deliver this request's notifications before exiting
    record = reply.record
    if args.json:
        from chatwatch.reports.export import json_object  # the exports' JSON: exact cost numbers

        out = record.to_dict() if record else {}
        out["text"] = reply.text
        print(json_object(out))
    elif failure is None:
        sys.stdout.write("\n")
    if reply.store_error:
        print(f"chatwatch: warning: {reply.store_error}", file=sys.stderr)
    if failure is not None:
        kind = getattr(failure, "error_type", type(failure).__name__)
        message = record.error_message if record else str(failure)
        print(f"chatwatch: error ({kind}): {message}", file=sys.stderr)
        return 1
    return 0


def cmd_models(args) -> int:
    from chatwatch.models.registry import ModelRegistry

    settings = _settings(args)
    worst = 0
    with contextlib.closing(ModelRegistry()) as registry:
        statuses = [(cfg, _check(registry, cfg)) for cfg in settings.models]
    for cfg, (ok, detail) in statuses:
        worst = worst or (0 if ok else 1)
        mark = "ok  " if ok else "FAIL"
        print(f"{mark} {cfg.id:<20} {cfg.kind:<10} {cfg.provider_name:<16} {detail}")
    return worst


def _check(registry, cfg) -> tuple[bool, str]:
    try:
        status = registry.get(cfg).check()
    except Exception as exc:
        return False, str(exc)
    return status.ok, status.detail


def cmd_check_config(args) -> int:
    settings = _settings(args)
    where = settings.source or "built-in defaults (no config file)"
    print(f"config ok: {where}; models: {', '.join(m.id for m in settings.models)}; store: {settings.store_url}")
    return 0


BENCH_PACKAGE = "chatwatch.bench"


def bench_names() -> list[str]:
    """The benchmarks, by module file name: found without importing any of them (nor the
    package itself, whose import would be one more module at start-up)."""
    spec = importlib.util.find_spec(BENCH_PACKAGE)
    locations = spec.submodule_search_locations if spec else None
    return sorted(m.name for m in pkgutil.iter_modules(locations or []) if not m.name.startswith("_"))


def cmd_bench(args) -> int:
    module = importlib.import_module(f"{BENCH_PACKAGE}.{args.bench}")
    parser = argparse.ArgumentParser(prog=f"chatwatch bench {args.bench}", description=module.HELP)
    _common(parser)
    module.add_arguments(parser)
    bench_args = parser.parse_args(args.bench_args)
    bench_args.bench = args.bench
    settings = _settings(bench_args)
    figures = module.run(bench_args, settings)
    print(json.dumps(figures))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from chatwatch import __version__

    parser = argparse.ArgumentParser(prog="chatwatch", description="A multi-model chatbot that watches itself.")
    parser.add_argument("--version", action="version", version=f"chatwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="start the Streamlit app")
    _common(p)
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="localhost")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ask", help="stream one reply to the terminal")
    _common(p)
    p.add_argument("prompt")
    p.add_argument("--model", metavar="ID")
    p.add_argument("--system", metavar="TEXT")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float, dest="top_p")
    p.add_argument("--max-tokens", type=int, dest="max_tokens")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-stream", action="store_true", help="ask for the whole reply at once")
    p.add_argument("--json", action="store_true", help="print the request record and text as one JSON object")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("models", help="list configured models and whether each is reachable")
    _common(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("check-config", help="validate the configuration")
    _common(p)
    p.set_defaults(func=cmd_check_config)

    from chatwatch.cli.data import add_data_commands

    add_data_commands(sub, _common)

    p = sub.add_parser(
        "bench",
        help="side-by-side benchmarks",
        description="Side-by-side benchmarks (see BENCHMARKS.md).",
        epilog="`chatwatch bench NAME --help` lists that benchmark's options.",
    )
    p.add_argument("bench", choices=bench_names(), metavar="NAME", help="one of: %(choices)s")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="...", help="the benchmark's own options")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"chatwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
