"""The data the alert modules pass around: rules, measurements, states and events."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal, get_args

from chatwatch.config import AlertRuleConfig

# The kinds the config accepts, in its order: one list, not copies kept in step by hand.
KINDS: tuple[str, ...] = get_args(AlertRuleConfig.model_fields["kind"].annotation)
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
# Rules that need `min_requests` requests in their window before they can fire.
USES_MIN_REQUESTS = frozenset({"error_rate", "latency_p95", "ttft_p95", "no_success"})
# Rules whose value is measured over `window_minutes` (daily_cost uses the UTC day).
USES_WINDOW = frozenset(KINDS) - {"daily_cost"}
USES_THRESHOLD = frozenset(KINDS) - {"no_success"}

State = Literal["ok", "pending", "firing", "resolved"]
EventState = Literal["firing", "renotify", "resolved"]
Origin = Literal["config", "page"]

US_PER_S = 1_000_000
US_PER_MIN = 60 * US_PER_S


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Rule:
    """One alert rule as stored (config fields plus where it came from)."""

    name: str
    kind: str
    threshold: float = 0.0
    model: str | None = None
    severity: str = "warning"
    window_minutes: float = 5.0
    min_requests: int = 1
    for_minutes: float = 0.0
    enabled: bool = True
    origin: Origin = "page"
    config_hash: str | None = None
    edited: bool = False  # a config rule changed on the page (wins until the config changes)
    deleted: bool = False

    @classmethod
    def from_config(cls, cfg: AlertRuleConfig) -> Rule:
        return cls(**cfg.model_dump(), origin="config", config_hash=config_hash(cfg))

    def settings(self) -> dict:
        """The fields a user sets (the config shape)."""
        return {f: getattr(self, f) for f in AlertRuleConfig.model_fields}

    def with_settings(self, **changes) -> Rule:
        return replace(self, **changes)

    @property
    def active(self) -> bool:
        return self.enabled and not self.deleted


def config_hash(cfg: AlertRuleConfig) -> str:
    """Identifies one version of a config rule: page edits win until this changes."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Measurement:
    """A rule's current value. `holds`: the condition is met (with enough data);
    `clear`: far enough from the threshold to resolve a firing alert (hysteresis)."""

    value: float | None
    samples: int
    holds: bool
    clear: bool
    model: str | None = None  # the model to blame when the rule covers every model


@dataclass(frozen=True)
class AlertState:
    rule: str
    state: str = "ok"
    version: int = 0
    pending_since_us: int | None = None
    firing_since_us: int | None = None
    last_notified_us: int | None = None
    notify_seq: int = 0
    resolved_us: int | None = None
    value: float | None = None
    model: str | None = None
    updated_us: int = 0


@dataclass(frozen=True)
class AlertEvent:
    """A notification-worthy transition, stored once and sent to every channel."""

    rule: str
    kind: str
    severity: str
    state: str  # firing | renotify | resolved | test
    value: float | None
    threshold: float
    model: str | None  # the model to blame, if known
    scope: str | None  # the rule's model (None = all models)
    firing_since_us: int
    at_us: int
    instance: str
    seq: int = 0
    id: int | None = None

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("id")
        return row

    @classmethod
    def from_row(cls, row) -> AlertEvent:
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(**{f.name: m[f.name] for f in fields(cls)})
