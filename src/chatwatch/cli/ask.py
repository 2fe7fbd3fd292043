"""`chatwatch ask`: one reply in the terminal, or its record as JSON.

Bad input is the user's to fix, so it exits 2 with one line naming the cause (a failed model
call exits 1): a number that is not one (`--seed abc`), a setting out of range, a prompt from
standard input that is not UTF-8 are refused here, before anything is asked or recorded (an
unstorable value, a 24-digit max_tokens, must not become a record). The prompt itself goes
through `Runtime.chat` like any request, so an empty prompt, a control character or a byte
that is not UTF-8 in the arguments (Python hands those over as surrogate escapes) is refused
by the one check every model kind gets, and leaves its error record.

`chatwatch ask -` reads the prompt from standard input: a shell refuses an argument over
128 KiB, so a long prompt comes from a file or a pipe.

A reply whose record the store would not take (database locked by another process, disk
full, PostgreSQL down) is still printed; the process then waits at most CLOSE_WAIT_S for the
store, and what it still could not write is spooled to a file the next chatwatch process
stores (telemetry/spool.py). Exiting 0 would tell a script all is well, so it exits 3 with
one line naming the cause and the spool file (or saying the record is lost, if even the
spool could not be written). A store that was only slow -- it took the record before the
deadline -- is no failure: exit 0, nothing said.

Exit codes: 0 done and recorded; 1 the model call failed; 2 bad input; 3 the reply was
given but its record is not in the store (spooled, or lost).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from chatwatch.config import load

EXIT_FAILED = 1  # the model call failed
EXIT_BAD_INPUT = 2  # the request was refused for its input: fix it and ask again
EXIT_NOT_STORED = 3  # the reply was given, but its record is in a spool file (or lost), not in the store
BAD_INPUT_ERRORS = ("invalid_request", "context_length")
CLOSE_WAIT_S = 3.0  # how long the CLI waits for a failing store after the reply before spooling


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("ask", help="stream one reply to the terminal")
    common(p)
    p.add_argument("prompt", help="the prompt, or - to read it from standard input (UTF-8)")
    p.add_argument("--model", metavar="ID")
    p.add_argument("--system", metavar="TEXT")
    # Read as text and converted in cmd_ask, so a bad value is one line naming the option.
    p.add_argument("--temperature", metavar="T")
    p.add_argument("--top-p", dest="top_p", metavar="P")
    p.add_argument("--max-tokens", dest="max_tokens", metavar="N")
    p.add_argument("--seed", metavar="N")
    p.add_argument("--no-stream", action="store_true", help="ask for the whole reply at once")
    p.add_argument("--json", action="store_true", help="print the request record and text as one JSON object")
    p.set_defaults(func=cmd_ask)


class BadInput(Exception):
    """Input refused before any request was made; the message names the option or the cause."""


def cmd_ask(args) -> int:
    try:
        return _ask(args)
    except BadInput as exc:
        print(f"chatwatch: error (invalid_request): {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _ask(args) -> int:
    from chatwatch.models.contract import GenerationSettings, InvalidRequestError, Message
    from chatwatch.models.validation import check_settings
    from chatwatch.runtime import Runtime

    prompt = read_stdin_prompt() if args.prompt == "-" else args.prompt
    settings = load(args.config)
    model_cfg = settings.model(args.model) if args.model else settings.default_model
    d = model_cfg.defaults
    generation = GenerationSettings(
        temperature=d.temperature if args.temperature is None else _number("--temperature", args.temperature, float),
        top_p=d.top_p if args.top_p is None else _number("--top-p", args.top_p, float),
        max_tokens=d.max_tokens if args.max_tokens is None else _number("--max-tokens", args.max_tokens, int),
        seed=d.seed if args.seed is None else _number("--seed", args.seed, int),
    )
    try:
        check_settings(generation, model_id=model_cfg.id)  # the Monitor's own check, before anything is stored
    except InvalidRequestError as exc:
        raise BadInput(exc.message) from None
    system = args.system if args.system is not None else d.system_prompt
    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
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
            # Waits for the store CLOSE_WAIT_S at most, then spools what it could not write.
            spooled = runtime.monitor.close(timeout=CLOSE_WAIT_S)
            lost = runtime.monitor.dropped_count
            if spooled is None and not lost:
                runtime.alerts.flush(10)  # deliver this request's notifications before exiting
            # Else the record is not in the store: evaluating now would only wait for the failing
            # store (seconds per write); the process that ingests it evaluates it.
    record = reply.record
    records = list(getattr(reply, "records", None) or ([record] if record else []))
    notices = getattr(reply, "notices", None)
    if notices is None:  # a reply of one attempt: the model's own notices (a trimmed conversation)
        notices = reply.result.notices if reply.result else ()
    notices = list(notices)
    if args.json:
        from chatwatch.reports.export import json_object  # the exports' JSON: exact cost numbers

        out = record.to_dict() if record else {}
        out["text"] = reply.text
        out["answered_by"] = getattr(reply, "answered_by", record.model if record and record.status == "ok" else None)
        out["notices"] = notices
        out["attempts"] = [r.to_dict() for r in records]
        print(json_object(out))
    else:
        if failure is None:
            sys.stdout.write("\n")
        for notice in notices:
            print(f"chatwatch: {notice}", file=sys.stderr)
    not_stored = _not_stored_line(spooled, lost, runtime.monitor.store_cause)
    if not_stored:
        print(not_stored, file=sys.stderr)
    if failure is not None:
        kind = getattr(failure, "error_type", type(failure).__name__)
        message = record.error_message if record else str(failure)
        print(f"chatwatch: error ({kind}): {message}", file=sys.stderr)
        return EXIT_BAD_INPUT if kind in BAD_INPUT_ERRORS else EXIT_FAILED
    return EXIT_NOT_STORED if not_stored else 0


def _not_stored_line(spooled, lost: int, cause: str | None) -> str | None:
    """The one line saying where the records the store did not take went (None: stored)."""
    if spooled is not None:
        n = spooled.records
        what = f"{n} record{'s' if n != 1 else ''}"
        if spooled.dropped:
            what += f" and the count of {spooled.dropped} dropped"
        pronoun = "it" if n == 1 and not spooled.dropped else "they"
        return (
            f"chatwatch: the store was unavailable ({spooled.cause}): {what} saved to {spooled.path}; "
            f"{pronoun} will be stored by the next chatwatch process"
        )
    if lost:
        return (
            f"chatwatch: error: the store was unavailable ({cause}) and no spool folder could be written: "
            f"{lost} record{'s' if lost != 1 else ''} lost (see the log)"
        )
    return None


def _number(option: str, text: str, kind: type[int] | type[float]) -> int | float:
    """An option's value as a number, or BadInput naming the option and the value."""
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise BadInput(f"{option} must be {what} (got {text!r})") from None


def read_stdin_prompt() -> str:
    """The prompt from standard input as UTF-8, read up to the longest conversation any check
    lets through (so a runaway pipe cannot fill the memory); a byte that is not UTF-8 is named
    with its offset. A trailing newline (the one `echo` adds) is not part of the prompt."""
    from chatwatch.models.validation import MAX_CONVERSATION_CHARS

    limit = MAX_CONVERSATION_CHARS * 4  # the most UTF-8 bytes that many characters can take
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise BadInput(f"the prompt from standard input is over {limit:,} bytes; send a shorter prompt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"the prompt from standard input is not valid UTF-8: byte 0x{data[exc.start]:02X} at byte offset "
            f"{exc.start} ({exc.reason})"
        ) from None
    return text.removesuffix("\n").removesuffix("\r")
