"""The runtime builds, owns and closes everything; a config edit keeps the models whose
entries did not change (one copy of the GGUF in memory, one `model_loads` row) and closes
the ones that changed. Real SmolLM2, real SQLite store, real threads."""

from __future__ import annotations

import copy
import threading

import psutil
import sqlalchemy as sa

from chatwatch import config
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.runtime import Runtime, Runtimes
from chatwatch.store.schema import model_loads

HI = [Message("user", "Say hi.")]
SHORT = GenerationSettings(max_tokens=4, seed=1, temperature=0.0)


def _raw(tmp_path) -> dict:
    return {
        "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
        "models": [
            {"id": "smollm2", "kind": "llama_cpp", "n_ctx": 1024},
            {"id": "remote", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "x", "timeout_s": 5},
        ],
    }


def _loads(rt: Runtime) -> int:
    with rt.store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(model_loads)).scalar_one()


def _ask(rt: Runtime) -> None:
    with rt.chat("smollm2", HI, SHORT, session_id="t") as reply:
        for _ in reply:
            pass
    assert reply.record is not None and reply.record.status == "ok"


def _threads() -> set[threading.Thread]:
    """chatwatch's live threads, as objects: one another test left running under the same
    name must not hide a thread this test leaks."""
    return {t for t in threading.enumerate() if t.name.startswith("chatwatch")}


def test_close_joins_every_thread_it_started(tmp_path):
    before = _threads()
    rt = Runtime(config.parse(_raw(tmp_path)), role="app")
    _ask(rt)
    assert rt.retention is not None and rt.retention.running
    rt.close()
    rt.close()  # idempotent
    assert _threads() <= before
    assert rt.closed


def test_config_edit_keeps_unchanged_models_and_closes_changed_ones(tmp_path):
    proc = psutil.Process()
    raw = _raw(tmp_path)
    with Runtimes() as runtimes:
        first = runtimes.get(config.parse(raw))
        _ask(first)
        local, _ = first.model("smollm2")
        assert local.loaded and _loads(first) == 1
        rss_loaded = proc.memory_info().rss

        # Two edits that leave the local model's entry alone: same instance, no reload.
        for timeout in (7, 9):
            raw = copy.deepcopy(raw)
            raw["models"][1]["timeout_s"] = timeout
            rt = runtimes.get(config.parse(raw))
            assert rt is not first and first.closed
            assert rt.model("smollm2")[0] is local
            _ask(rt)
            first = rt
        assert _loads(rt) == 1  # no duplicate load row
        # A second copy of SmolLM2 would add about 100 MB; allow for allocator noise only.
        assert proc.memory_info().rss - rss_loaded < 40 * 2**20

        # Editing the local model's entry closes the old instance and loads a new one.
        raw = copy.deepcopy(raw)
        raw["models"][0]["n_ctx"] = 2048
        rt = runtimes.get(config.parse(raw))
        new_local = rt.model("smollm2")[0]
        assert new_local is not local and not local.loaded
        _ask(rt)
        assert new_local.loaded and _loads(rt) == 2
    assert rt.closed and not new_local.loaded


def test_a_reply_in_progress_outlives_a_config_swap(tmp_path):
    """The old runtime is closed while a session is still reading its reply: the reply
    finishes on the kept model, its record is committed, and no thread is left behind."""
    raw = _raw(tmp_path)
    before = _threads()
    with Runtimes() as runtimes:
        old = runtimes.get(config.parse(raw))
        reply = old.chat("smollm2", HI, GenerationSettings(max_tokens=24, seed=3), session_id="t")
        first = next(reply)
        edited = copy.deepcopy(raw)
        edited["models"][1]["timeout_s"] = 11
        new = runtimes.get(config.parse(edited))
        assert old.closed and new.model("smollm2")[0] is old.model("smollm2")[0]
        rest = "".join(reply)
        assert reply.record is not None and reply.record.status == "ok" and reply.text == first + rest
        assert new.store.get(reply.record.id) == reply.record
    assert _threads() <= before
