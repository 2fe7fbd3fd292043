"""Channels and delivery: a real local HTTP server receives apprise json:// posts with the
expected title and message; failures are retried with backoff; a webhook that never
answers delays no reply and times out in the background; secrets in URLs stay hidden."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from chatwatch import config
from chatwatch.alerts.channels import AppriseChannel, Notification, build_channels, mask_url
from chatwatch.alerts.notify import ChannelWorker, DeliveryPolicy, Notifier
from chatwatch.alerts.service import AlertService
from chatwatch.models.contract import ChatStream, GenerationSettings, Message, ModelConnectionError, StreamProgress
from chatwatch.privacy import scrub
from chatwatch.store.records import to_us
from chatwatch.telemetry.monitor import Monitor
from tests.fixtures.db import BASE_TIME, make_record

FAST = DeliveryPolicy(timeout_s=1.0, attempts=3, backoff_s=0.1, queue_size=10)


class LogKeeper(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in self.messages()):
                return True
            time.sleep(0.02)
        return False


@pytest.fixture
def alert_log() -> Iterator[LogKeeper]:
    keeper = LogKeeper()
    logger = logging.getLogger("chatwatch.alerts")
    logger.addHandler(keeper)
    yield keeper
    logger.removeHandler(keeper)


def _settings(notify: list[str], rules: list[dict], **alerts) -> config.Settings:
    return config.parse({"app": {"language": "en"}, "alerts": {"notify": notify, "rules": rules, **alerts}})


DOWN = {
    "name": "model down",
    "kind": "consecutive_failures",
    "threshold": 2,
    "model": "smollm2",
    "severity": "critical",
}


def test_webhook_receives_firing_and_resolved(sqlite_store, webhook):
    now = [to_us(BASE_TIME)]
    svc = AlertService(
        _settings([webhook.url("/alerts")], [DOWN]),
        sqlite_store.engine,
        instance="web-1",
        clock=lambda: now[0],
        policy=FAST,
    )
    svc.seed()
    sqlite_store.write(make_record(status="error", started_at=BASE_TIME))
    sqlite_store.write(make_record(status="error", started_at=BASE_TIME + timedelta(seconds=1)))
    now[0] += 2_000_000
    assert svc.flush(10)  # evaluates, then waits for the delivery
    got = webhook.received
    assert len(got) == 1 and got[0].path == "/alerts"
    body = got[0].body
    assert body["title"] == "[chatwatch] CRITICAL ALERT: model down"
    assert body["message"] == (
        "Consecutive failures: 2 in a row (threshold 2) on model smollm2. "
        "Since 2026-01-05 12:00:02 UTC. Instance web-1."
    )
    assert body["type"] == "failure"
    sqlite_store.write(make_record(started_at=BASE_TIME + timedelta(seconds=3)))
    now[0] += 2_000_000
    assert svc.flush(10)
    body = webhook.received[1].body
    assert body["title"] == "[chatwatch] RESOLVED: model down"
    assert body["message"].startswith("Consecutive failures is back to normal on model smollm2: 0 in a row")
    assert body["type"] == "success"
    svc.close()


def test_spanish_notifications(sqlite_store, webhook):
    settings = config.parse({"app": {"language": "es"}, "alerts": {"notify": [webhook.url()], "rules": [DOWN]}})
    svc = AlertService(settings, sqlite_store.engine, instance="w", clock=lambda: to_us(BASE_TIME) + 10**7, policy=FAST)
    svc.seed()
    for i in range(2):
        sqlite_store.write(make_record(status="error", started_at=BASE_TIME + timedelta(seconds=i)))
    assert svc.flush(10)
    assert webhook.received[0].body["title"] == "[chatwatch] ALERTA (CRÍTICA): model down"
    assert "Fallos seguidos: 2 seguidos (umbral 2) en el modelo smollm2" in webhook.received[0].body["message"]
    svc.close()


def test_failed_delivery_is_retried_with_backoff(webhook, alert_log):
    webhook.fail_next(2)
    notifier = Notifier([AppriseChannel(webhook.url())], FAST)
    started = time.monotonic()
    notifier.publish(Notification("t", "b", "info"))
    assert notifier.drain(10)
    assert webhook.attempts == 3 and len(webhook.received) == 1
    assert time.monotonic() - started >= 0.1 + 0.2  # backoff 0.1 s, then 0.2 s
    text = "\n".join(alert_log.messages())
    assert "failed (attempt 1/3" in text and "failed (attempt 2/3" in text and "failed (attempt 3/3" not in text
    notifier.close()


def test_gives_up_after_the_last_attempt(webhook, alert_log):
    webhook.fail_next(10)
    notifier = Notifier([AppriseChannel(webhook.url())], DeliveryPolicy(timeout_s=1, attempts=2, backoff_s=0.05))
    notifier.publish(Notification("gone", "b", "info"))
    assert notifier.drain(10)
    assert webhook.attempts == 2 and webhook.received == []
    assert any("not delivered" in m and "after 2 attempt(s)" in m for m in alert_log.messages())
    assert notifier.stats()[f"json://127.0.0.1:{webhook.port}/alerts"]["failed"] == 1
    notifier.close()


class FailingModel:
    """A model that fails at once, like an unreachable server."""

    id = "smollm2"
    provider = "llama.cpp"
    provider_model = "x.gguf"

    def chat(self, messages, settings, *, stream=True, on_wait=None, deadline=None) -> ChatStream:
        progress = StreamProgress()

        def gen():
            progress.mark_started()
            raise ModelConnectionError("connection refused", model_id=self.id)
            yield ""  # a generator

        return ChatStream(gen(), progress)


def test_hanging_webhook_never_delays_a_reply(sqlite_store, hanging_webhook, webhook, alert_log):
    settings = _settings([hanging_webhook.url(), webhook.url()], [{**DOWN, "threshold": 1, "name": "down"}])
    svc = AlertService(
        settings, sqlite_store.engine, instance="w", policy=DeliveryPolicy(timeout_s=1, attempts=2, backoff_s=0.1)
    )
    svc.seed()
    svc.start()
    monitor = Monitor(settings, sqlite_store, instance="w")
    monitor.add_listener(svc.on_record)
    model_cfg = settings.default_model
    durations = []
    for _ in range(5):
        t = time.monotonic()
        reply = monitor.chat(FailingModel(), model_cfg, [Message("user", "hi")], GenerationSettings(), session_id="s")
        with pytest.raises(ModelConnectionError):
            list(reply)
        durations.append(time.monotonic() - t)
        assert reply.record is not None and reply.record.status == "error"
    assert max(durations) < 0.5, durations
    # The healthy channel got the alert at once, while the hanging one is still waiting.
    assert len(webhook.wait_for(1, timeout=5)) == 1
    assert webhook.received[0].body["title"] == "[chatwatch] CRITICAL ALERT: down"
    deadline = time.monotonic() + 3
    while not hanging_webhook.connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hanging_webhook.connections, "the hanging channel was never tried"
    assert alert_log.wait_for("not delivered", timeout=8)
    text = "\n".join(alert_log.messages())
    took = re.search(rf"127.0.0.1:{hanging_webhook.port}/alerts failed \(attempt 1/2, ([\d.]+) s\)", text)
    assert took and 0.8 <= float(took.group(1)) <= 2.0, text  # gave up at the 1 s timeout
    assert monitor.drain(5)
    t = time.monotonic()
    svc.close(timeout=5)
    assert time.monotonic() - t < 5
    monitor.close()


def test_publish_never_blocks_and_the_queue_is_bounded(alert_log):
    release = threading.Event()

    class Stuck:
        label = "stuck://"

        def send(self, message, timeout_s):
            release.wait(10)

    worker = ChannelWorker(Stuck(), DeliveryPolicy(timeout_s=5, attempts=1, queue_size=2))
    t = time.monotonic()
    accepted = [worker.put(Notification(f"m{i}", "b", "info")) for i in range(6)]
    assert time.monotonic() - t < 0.2
    # One is being sent, two wait in the queue, the rest are dropped (and logged).
    assert accepted.count(False) >= 3 and worker.dropped == accepted.count(False)
    assert any("backed up" in m for m in alert_log.messages())
    release.set()
    assert worker.wait_idle(5)
    worker.close(2)


def test_send_test_reports_each_channel(sqlite_store, webhook, hanging_webhook):
    settings = _settings([webhook.url("/ok"), hanging_webhook.url("/never")], [])
    svc = AlertService(settings, sqlite_store.engine, instance="w", policy=FAST)
    t = time.monotonic()
    outcomes = svc.send_test(timeout_s=0.5)
    assert time.monotonic() - t < 2.5
    assert [(o.label.split("/")[-1], o.ok) for o in outcomes] == [("ok", True), ("never", False)]
    assert webhook.received[0].body["title"] == "[chatwatch] Test notification"
    assert "chatwatch alerts reach this channel" in webhook.received[0].body["message"]
    svc.close()


def test_secret_urls_come_from_the_environment_and_are_masked(monkeypatch, webhook):
    secret = "T000AAAA/B000BBBB/abcdefghijklmnopqrstuvwx"
    monkeypatch.setenv("CW_TEST_SLACK", f"slack://{secret}")
    monkeypatch.setenv("CW_TEST_HOOK", f"{webhook.url('/tok-12345678')} ")
    cfg = config.AlertsConfig(notify_env=["CW_TEST_SLACK", "CW_TEST_HOOK", "CW_TEST_UNSET"])
    channels, infos = build_channels(cfg)
    assert len(channels) == 2
    shown = {i.source: (i.label, i.ok, i.problem) for i in infos}
    assert shown["$CW_TEST_UNSET"] == ("—", False, "not set")
    slack_label = shown["$CW_TEST_SLACK"][0]
    assert slack_label.startswith("slack://") and "abcdefghijklmnopqrstuvwx" not in slack_label
    assert "abcdefghijklmnopqrstuvwx" not in scrub(f"posting to slack://{secret}")  # registered as a secret
    assert mask_url("mailto://user:hunter2pass@example.com").count("hunter2pass") == 0
    assert "pw123456" not in mask_url("weird+scheme://me:pw123456@host.example/path?x=1")


def test_secrets_never_reach_the_database(sqlite_store, monkeypatch, webhook):
    import sqlalchemy as sa

    token = "tok-" + "z" * 24
    monkeypatch.setenv("CW_TEST_HOOK", webhook.url(f"/{token}"))
    settings = config.parse({"alerts": {"notify_env": ["CW_TEST_HOOK"], "rules": [{**DOWN, "threshold": 1}]}})
    svc = AlertService(settings, sqlite_store.engine, instance="w", clock=lambda: to_us(BASE_TIME) + 10**7, policy=FAST)
    svc.seed()
    sqlite_store.write(make_record(status="error", started_at=BASE_TIME))
    assert svc.flush(10)
    assert webhook.received[0].path == f"/{token}"
    with sqlite_store.engine.connect() as conn:
        for table in ("alert_rules", "alert_state", "alert_events"):
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            assert rows and token not in repr(rows)
    svc.close()


def test_invalid_channel_url_is_reported_not_fatal(alert_log):
    channels, infos = build_channels(config.AlertsConfig(notify=["nonsense://whatever/secret-part"]))
    assert channels == []
    assert infos[0].ok is False and "secret-part" not in infos[0].label
    assert any("alert channel from notify ignored" in m for m in alert_log.messages())
