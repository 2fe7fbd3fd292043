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
import pkgutil
import sys

from chatwatch.config import ENV_VAR, ConfigError, Settings, load


def _settings(args) -> Settings:
    return load(args.config)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help=f"TOML config file (default: ${ENV_VAR} or ./chatwatch.toml)")


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
    """Parses the config, then checks that its folders and store are usable here (exit 1 if not)."""
    from chatwatch.cli.checkconfig import check

    settings = _settings(args)
    where = settings.source or "built-in defaults (no config file)"
    store = sa_safe_url(settings.store_url)
    problems = check(settings)
    if problems:
        print(f"config parsed but not usable here: {where}", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        print("chatwatch would still answer, but records would wait in memory or be spooled", file=sys.stderr)
        return 1
    print(f"config ok: {where}; models: {', '.join(m.id for m in settings.models)}; store: {store}")
    return 0


def sa_safe_url(url: str) -> str:
    """The store URL without its password, for printing."""
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


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

    # Each command module registers its own arguments; its heavy imports wait until it runs.
    from chatwatch.cli import ask, auth, compare, serve

    serve.add_parser(sub, _common)
    auth.add_parser(sub, _common)
    ask.add_parser(sub, _common)
    compare.add_parser(sub, _common)

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
