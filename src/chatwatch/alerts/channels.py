"""Where alerts go besides the app: the `chatwatch.alerts` log and apprise URLs (Slack,
Discord, e-mail, Telegram, a JSON webhook, ...).

Channel URLs hold tokens, so they come from environment variables named in
`[alerts] notify_env` (or, without secrets, from `notify`); they are registered as secrets
(scrubbed from logs), never stored, and shown only masked (`label`).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from dataclasses import dataclass
from typing import Protocol

from chatwatch.alerts.model import AlertEvent
from chatwatch.alerts.text import body, title
from chatwatch.config import AlertsConfig
from chatwatch.privacy import register_secret, scrub

log = logging.getLogger("chatwatch.alerts")

_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Notification:
    """What a channel is given for one alert event (not a chat message: see
    chatwatch.models.contract.Message)."""

    title: str
    body: str
    kind: str  # info | success | warning | failure (apprise's notify types)


class DeliveryError(Exception):
    """A channel did not take the message; the text is safe to log (no secrets)."""


class Channel(Protocol):
    label: str  # masked: safe to show and log

    def send(self, message: Notification, timeout_s: float) -> None:
        """Deliver or raise DeliveryError; should give up after about `timeout_s`."""


def notification_for(event: AlertEvent, lang: str) -> Notification:
    if event.state == "resolved":
        # Only a recovery is a success; resolved for lack of data or a rule turned off is news.
        kind = "success" if event.reason in (None, "recovered") else "info"
    elif event.state == "test":
        kind = "info"
    else:
        kind = {"critical": "failure", "warning": "warning"}.get(event.severity, "info")
    return Notification(title(event, lang), body(event, lang), kind)


def log_event(event: AlertEvent, lang: str) -> None:
    """The log channel: one line per event, ERROR for critical alerts, WARNING otherwise."""
    level = logging.ERROR if event.severity == "critical" and event.state != "resolved" else logging.WARNING
    log.log(
        level,
        "%s — %s",
        title(event, lang),
        body(event, lang),
        extra={
            "alert_rule": event.rule,
            "alert_state": event.state,
            "alert_kind": event.kind,
            "alert_severity": event.severity,
            "alert_value": event.value,
            "alert_threshold": event.threshold,
            "alert_reason": event.reason,
        },
    )


def mask_url(url: str) -> str:
    """`url` with tokens, passwords and paths hidden (apprise's privacy form when it
    understands the URL; else only the scheme and host)."""
    import apprise

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is not None:
        try:
            # The query holds only options (apprise masks secrets in it too): dropped for brevity.
            return plugin.url(privacy=True).split("?", 1)[0]
        except Exception:
            pass
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/]*@)?([^/:?#]*)", url)
    return f"{m.group(1)}://{m.group(2) or '***'}/***" if m else "***"


class AppriseChannel:
    """One apprise URL. The plugin is built once; its socket timeouts are capped so an
    abandoned attempt ends on its own."""

    def __init__(self, url: str, *, label: str | None = None, timeout_s: float = 10.0):
        import apprise

        self.label = label or mask_url(url)
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:
            raise ValueError(f"not a valid apprise URL: {self.label}")
        for attr in ("socket_connect_timeout", "socket_read_timeout"):
            current = getattr(plugin, attr, None)
            if isinstance(current, (int, float)):
                setattr(plugin, attr, min(float(current), timeout_s))
        self._apprise = apprise.Apprise()
        self._apprise.add(plugin)
        self._has_timeout = "timeout" in inspect.signature(self._apprise.notify).parameters

    def send(self, message: Notification, timeout_s: float) -> None:
        kwargs = {"timeout": timeout_s} if self._has_timeout else {}
        ok = self._apprise.notify(body=message.body, title=message.title, notify_type=message.kind, **kwargs)
        if not ok:
            status = getattr(getattr(ok, "status", None), "name", None)  # apprise >= 2: SUCCESS, TIMEOUT, ...
            if status == "TIMEOUT":
                raise DeliveryError(f"no answer within {timeout_s:g} s")
            raise DeliveryError(_reason(ok) or "the service did not accept the notification")


def _reason(result) -> str | None:
    """The last warning apprise (>= 2) recorded for a failed call, secrets removed."""
    try:
        messages = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
    except Exception:  # an older apprise returns a plain bool
        return None
    return scrub(str(messages[-1]))[:300] if messages else None


@dataclass(frozen=True)
class ChannelInfo:
    """One configured channel as the page shows it: where it comes from, masked."""

    source: str  # "notify" or "$ENV_NAME"
    label: str
    ok: bool
    problem: str | None = None


def build_channels(
    cfg: AlertsConfig, *, timeout_s: float = 10.0, environ: dict[str, str] | None = None
) -> tuple[list[Channel], list[ChannelInfo]]:
    """Apprise channels from `notify` and the variables in `notify_env` (each may hold
    several URLs separated by spaces or commas)."""
    env = os.environ if environ is None else environ
    sources: list[tuple[str, str]] = [("notify", u) for u in cfg.notify if u.strip()]
    infos: list[ChannelInfo] = []
    for name in cfg.notify_env:
        value = env.get(name, "").strip()
        if not value:
            infos.append(ChannelInfo(f"${name}", "—", False, "not set"))
            continue
        for url in _SPLIT.split(value):
            if url:
                register_secret(url)  # so no log line or message ever shows it
                sources.append((f"${name}", url))
    channels: list[Channel] = []
    for source, url in sources:
        try:
            channel = AppriseChannel(url.strip(), timeout_s=timeout_s)
        except ValueError as exc:
            infos.append(ChannelInfo(source, mask_url(url), False, str(exc)))
            log.error("alert channel from %s ignored: %s", source, exc)
            continue
        channels.append(channel)
        infos.append(ChannelInfo(source, channel.label, True))
    return channels, infos
