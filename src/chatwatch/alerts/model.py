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
# Rules compared with normal (alerts/baseline.py): the threshold is a ratio to the baseline.
BASELINE_KINDS = frozenset({"latency_p95_anomaly", "ttft_p95_anomaly", "error_rate_anomaly", "traffic_drop"})
# What normal is, and how far from it fires, for those rules (config.AlertRuleConfig).
BASELINE_CHOICES: tuple[str, ...] = get_args(AlertRuleConfig.model_fields["baseline"].annotation)
SCORE_CHOICES: tuple[str, ...] = get_args(AlertRuleConfig.model_fields["score"].annotation)
# Rules that need `min_requests` requests in their window before they can fire (for the
# baseline kinds: in the current window and in each past day's window counted).
USES_MIN_REQUESTS = frozenset({"error_rate", "latency_p95", "ttft_p95", "no_success"}) | BASELINE_KINDS
# Rules with nothing to measure when their window is empty (or under min_requests): "no
# data". daily_cost always has a value (a new UTC day starts at $0); circuit_open too (a
# circuit is open or it is not: the breakers' table, not a window of requests).
NEEDS_DATA = frozenset(KINDS) - {"daily_cost", "circuit_open"}
# What a rule does on no data (config.AlertRuleConfig.no_data; engine.py says how).
NO_DATA_CHOICES: tuple[str, ...] = get_args(AlertRuleConfig.model_fields["no_data"].annotation)
# Rules whose value is measured over `window_minutes` (daily_cost uses the UTC day;
# circuit_open reads the breakers' state now).
USES_WINDOW = frozenset(KINDS) - {"daily_cost", "circuit_open"}
USES_THRESHOLD = frozenset(KINDS) - {"no_success", "circuit_open"}

State = Literal["ok", "pending", "firing", "resolved"]
EventState = Literal["firing", "renotify", "resolved"]
# Why an event carries no fresh measurement, or why a firing alert resolved.
Reason = Literal["recovered", "no_data", "off"]
# config: from the config file; page: made on the Alerts page; default: one of the rules a
# fresh install starts with (alerts/defaults.py), stored once and then the user's to change.
Origin = Literal["config", "page", "default"]

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
    no_data: str = "keep"
    baseline: str = "daily"  # baseline kinds only: "daily" or "recent" (alerts/baseline.py)
    baseline_windows: int = 6  # with baseline = "recent": how many windows before this one
    score: str = "ratio"  # baseline kinds only: "ratio" or "z"
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


# Keys added to AlertRuleConfig after rules were first stored: hashed only when set off
# their default, so an upgrade does not look like a new config version (which would
# overwrite the page edits of every config rule).
_LATER_KEYS = {"no_data": "keep", "baseline": "daily", "baseline_windows": 6, "score": "ratio"}


def config_hash(cfg: AlertRuleConfig) -> str:
    """Identifies one version of a config rule: page edits win until this changes."""
    dumped = cfg.model_dump(mode="json")
    for key, default in _LATER_KEYS.items():
        if dumped.get(key) == default:
            del dumped[key]
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Measurement:
    """A rule's current value. `holds`: the condition is met (with enough data);
    `clear`: far enough from the threshold to resolve a firing alert (hysteresis);
    `no_data`: the window had too few requests (`samples`) to say either, and `value` is
    None rather than a number computed from nothing. Exactly one of the three is true."""

    value: float | None
    samples: int
    holds: bool
    clear: bool
    model: str | None = None  # the model to blame when the rule covers every model
    no_data: bool = False
    # Rules that compare with normal (alerts/baseline.py): the baseline's mean and its band.
    baseline: float | None = None
    band: tuple[float, float] | None = None
    # With score = "z": how many baseline standard deviations the value is from the mean
    # (positive = the way the rule looks: above, or below for traffic_drop).
    z: float | None = None
    # With no_data because of the baseline: how many baseline windows (days, or recent
    # windows) had min_requests, so the page can say which part is missing.
    usable: int | None = None


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
    # recovered / no_data / off for resolutions; no_data for a renotify without fresh data.
    reason: str | None = None
    # What the window held when there was no data, for the words "only 3 requests in the
    # last 5 min (5 needed)": samples seen, the rule's window and minimum at the time.
    samples: int | None = None
    window_minutes: float | None = None
    min_requests: int | None = None
    # A baseline kind's score ("ratio" or "z"): what its threshold means.
    score: str | None = None
    id: int | None = None

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("id")
        return row

    @classmethod
    def from_row(cls, row) -> AlertEvent:
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(**{f.name: m[f.name] for f in fields(cls) if f.name in m})
