"""`chatwatch ask`: one reply in the terminal, or its record as JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from chatwatch.config import load


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("ask", help="stream one reply to the terminal")
    common(p)
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


def cmd_ask(args) -> int:
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.runtime import Runtime

    settings = load(args.config)
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
