"""`chatwatch compare`: one prompt to several models at once, the answers and their measured
figures side by side in the terminal, or as one JSON object.

Every answer is an ordinary request record (mode "compare", one compare id shared by the
round), so the dashboard, alerts, budgets and exports count it like any other request. The
models run concurrently, one thread each; a local model still takes its turn in its queue.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable

from chatwatch.config import ConfigError, load

MIN_MODELS, MAX_MODELS = 2, 4


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("compare", help="one prompt to 2-4 models, the answers side by side")
    common(p)
    p.add_argument("prompt")
    p.add_argument("--models", required=True, metavar="A,B[,C,D]", help="2 to 4 model ids, comma separated")
    p.add_argument("--max-tokens", type=int, dest="max_tokens")
    p.add_argument("--json", action="store_true", help="print one JSON object: the answers' records and texts")
    p.set_defaults(func=cmd_compare)


def parse_models(value: str, known: list[str]) -> list[str]:
    ids = [m.strip() for m in value.split(",") if m.strip()]
    if not MIN_MODELS <= len(ids) <= MAX_MODELS:
        raise ConfigError(f"--models takes {MIN_MODELS} to {MAX_MODELS} model ids, got {len(ids)}: {value!r}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"--models names a model twice: {value!r}")
    unknown = [m for m in ids if m not in known]
    if unknown:
        raise ConfigError(f"unknown model {', '.join(unknown)} (configured: {', '.join(known)})")
    return ids


def cmd_compare(args) -> int:
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.runtime import Runtime

    settings = load(args.config)
    try:
        ids = parse_models(args.models, [m.id for m in settings.models])
    except ConfigError as exc:
        print(f"chatwatch: error: {exc}", file=sys.stderr)
        return 2
    compare_id = str(uuid.uuid4())
    with Runtime(settings, role="cli") as runtime:
        replies = {}
        for model_id in ids:
            d = runtime.settings.model(model_id).defaults
            generation = GenerationSettings(
                temperature=d.temperature,
                top_p=d.top_p,
                max_tokens=d.max_tokens if args.max_tokens is None else args.max_tokens,
                seed=d.seed,
            )
            messages = ([Message("system", d.system_prompt)] if d.system_prompt else []) + [
                Message("user", args.prompt)
            ]
            replies[model_id] = runtime.chat(
                model_id, messages, generation, session_id="cli", mode="compare", compare_id=compare_id
            )
        failures: dict[str, BaseException] = {}

        def drain(model_id: str) -> None:
            reply = replies[model_id]
            try:
                for _ in reply:
                    pass
            except Exception as exc:  # recorded by the monitor; reported below
                failures[model_id] = exc
            finally:
                reply.close()

        threads = [threading.Thread(target=drain, args=(m,), name=f"compare-{m}") for m in ids]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        runtime.monitor.drain()
        runtime.alerts.flush(10)
    if args.json:
        from chatwatch.reports.export import json_object

        answers = []
        for m in ids:
            out = replies[m].record.to_dict() if replies[m].record else {"model": m}
            out["text"] = replies[m].text
            out["attempts"] = [r.to_dict() for r in replies[m].records]  # retries are records of their own
            answers.append(out)
        print("{" + f'"compare_id": "{compare_id}", "answers": [' + ", ".join(map(json_object, answers)) + "]}")
    else:
        print(side_by_side([(m, replies[m].text, replies[m].record, failures.get(m)) for m in ids]))
    for m in ids:
        if replies[m].store_error:
            print(f"chatwatch: warning ({m}): {replies[m].store_error}", file=sys.stderr)
    return 1 if failures else 0


def measurements(record) -> list[str]:
    if record is None:
        return ["(no record)"]

    def sec(v):
        return "—" if v is None else f"{v:.2f} s"

    cost = "unpriced" if record.cost_usd is None else f"${record.cost_usd}"
    rate = "—" if record.output_tokens_per_s is None else f"{record.output_tokens_per_s:.1f} tok/s"
    tokens = f"{record.input_tokens if record.input_tokens is not None else '?'} in / "
    tokens += f"{record.output_tokens if record.output_tokens is not None else '?'} out"
    return [
        f"status: {record.status}" + (f" ({record.error_type})" if record.error_type else ""),
        f"latency: {sec(record.latency_s)}",
        f"TTFT: {sec(record.ttft_s)}",
        f"speed: {rate}",
        f"tokens: {tokens}",
        f"cost: {cost}",
        f"record: {record.id}",
    ]


def side_by_side(answers: list[tuple[str, str, object, BaseException | None]]) -> str:
    """Columns of equal width: the model, its answer wrapped, then its measurements."""
    width = shutil.get_terminal_size((120, 40)).columns
    col = max(20, (width - 3 * (len(answers) - 1)) // len(answers))
    columns = []
    for model, text, record, failure in answers:
        body = text.strip() or (f"[error: {record.error_message if record else failure}]" if failure else "")
        lines = [model, "-" * min(col, max(len(model), 8))]
        for para in body.splitlines() or [""]:
            lines += textwrap.wrap(para, col) or [""]
        lines += [""] + [line[:col] for line in measurements(record)]
        columns.append(lines)
    height = max(len(c) for c in columns)
    rows = []
    for i in range(height):
        cells = [(c[i] if i < len(c) else "").ljust(col) for c in columns]
        rows.append(" | ".join(cells).rstrip())
    return "\n".join(rows)
