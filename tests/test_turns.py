"""Taking turns on one llama.cpp instance (models/turns.py): first come, first served, and a
request waiting in line gives up at its deadline even when its place never moves (before,
it learned of its deadline only when its turn came, after the whole reply ahead of it).
Real threads; the last test uses the real SmolLM2 through Runtime.chat."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from chatwatch import config
from chatwatch.models.contract import GenerationSettings, Message, ModelTimeoutError
from chatwatch.models.turns import TurnExpired, TurnQueue
from chatwatch.runtime import Runtime


def test_turns_are_first_come_first_served():
    q = TurnQueue()
    order: list[int] = []
    hold = threading.Event()
    inside = threading.Event()

    def first():
        with q.turn():
            inside.set()
            hold.wait(5)
            order.append(0)

    def later(n: int):
        with q.turn():
            order.append(n)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    inside.wait(5)
    for n in (1, 2, 3):
        t = threading.Thread(target=later, args=(n,))
        t.start()
        threads.append(t)
        while q.length < n + 1:  # in line before the next one arrives
            time.sleep(0.005)
    hold.set()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3]


def test_a_place_that_never_moves_still_gives_up_at_its_deadline():
    q = TurnQueue()
    inside, release = threading.Event(), threading.Event()

    def holder():
        with q.turn():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(5)
    places: list[int] = []
    t0 = time.monotonic()
    with pytest.raises(TurnExpired):
        with q.turn(places.append, deadline=t0 + 0.5):
            pass
    waited = time.monotonic() - t0
    release.set()
    t.join(5)
    assert 0.5 <= waited < 0.8, waited
    assert places == [1] and q.length == 0  # told its place once; left the line


def test_a_chat_queued_behind_a_long_reply_times_out_at_its_timeout_s(tmp_path):
    settings = config.parse(
        {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "models": [{"id": "smollm2", "kind": "llama_cpp", "n_ctx": 1024, "timeout_s": 1.0, "retries": 0}],
        }
    )
    long = GenerationSettings(max_tokens=400, seed=1, temperature=0.0)
    with Runtime(settings, role="cli") as rt:
        with rt.chat("smollm2", [Message("user", "Hi")], GenerationSettings(max_tokens=2), session_id="w") as r:
            list(r)  # loaded
        started = threading.Event()

        def long_reply():
            # A deadline of its own far away: a direct Monitor call with no chain deadline.
            model, cfg = rt.model("smollm2")
            with rt.monitor.chat(
                model, cfg, [Message("user", "Write a long story about a dragon.")], long, session_id="a"
            ) as s:
                for _ in s:
                    started.set()

        t = threading.Thread(target=long_reply)
        t.start()
        assert started.wait(30)
        t0 = time.monotonic()
        with pytest.raises(ModelTimeoutError, match="gave up after waiting"):
            with rt.chat("smollm2", [Message("user", "Hello?")], GenerationSettings(max_tokens=8), session_id="b") as r:
                list(r)
        waited = time.monotonic() - t0
        still_running = t.is_alive()
        t.join(120)
        assert still_running  # the reply ahead was still being written when this one gave up
        assert waited < 1.5, waited
        rt.monitor.drain()
        with rt.store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, error_type FROM requests WHERE session_id = 'b'")).all()
    assert [tuple(x) for x in rows] == [("error", "timeout")]  # recorded, and not retried
