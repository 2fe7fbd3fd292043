"""`chatwatch bench all`: every other benchmark in one run, each with its quick options, each
printing its figures as one JSON line as it finishes (the last line is a JSON object of them
all, by name). Quick sizes keep it to a few minutes on 2 cores; run a benchmark on its own
with its full defaults for the figures BENCHMARKS.md records."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

import chatwatch.bench as package

HELP = "run every benchmark with quick options and print their JSON lines"

# Options that keep each benchmark short; a benchmark not listed runs with its defaults.
QUICK: dict[str, list[str]] = {
    "cache": ["--requests", "40"],
    "dashboard": ["--rows", "10000", "--runs", "2"],
    "ingest": ["--rows", "2000"],
    "local": ["--runs", "2", "--max-tokens", "32"],
    "memory": ["--rows", "10000"],
    "overhead": ["--runs", "300", "--model-runs", "2"],
}


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", metavar="NAME[,NAME...]", help="run only these benchmarks")


def run(args: argparse.Namespace, settings) -> dict:
    chosen = names() if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(names()))
    if unknown:
        raise SystemExit(f"chatwatch: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names())}")
    results: dict[str, dict] = {}
    for name in chosen:
        module = importlib.import_module(f"{package.__name__}.{name}")
        parser = argparse.ArgumentParser(prog=f"chatwatch bench {name}")
        module.add_arguments(parser)
        bench_args = parser.parse_args(QUICK.get(name, []))
        bench_args.bench = name
        bench_args.config = getattr(args, "config", None)
        print(f"== {name}", flush=True)
        figures = module.run(bench_args, settings)
        print(json.dumps({"bench": name, **figures}), flush=True)
        results[name] = figures
    return results
