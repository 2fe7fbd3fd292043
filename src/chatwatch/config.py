"""Settings: a TOML file (or none) validated into typed objects.

Errors name the bad key and value. Relative paths resolve against the config file's folder
(or the working directory when there is no file). API keys never live here: a model names
the environment variable that holds its key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_VAR = "CHATWATCH_CONFIG"
DEFAULT_FILE = "chatwatch.toml"
DEFAULT_MODEL_ID = "smollm2"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationDefaults(_Strict):
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1, le=1_000_000)
    seed: int | None = None
    system_prompt: str = ""


class PriceConfig(_Strict):
    """USD per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float | None = Field(None, ge=0)


FallbackOn = Literal["connection", "timeout", "rate_limit", "provider_error"]


class BreakerConfig(_Strict):
    """A model's circuit breaker (chatwatch/resilience/breaker.py): it opens after
    `failures` consecutive failed attempts, or when at least `min_requests` attempts in the
    last `window_s` seconds failed at `failure_ratio` or more; while open, requests skip the
    model (to its fallbacks, or a clear "unavailable" error) for `cooldown_s`, then one probe
    request decides (half-open)."""

    enabled: bool = True
    failures: int = Field(5, ge=1, le=1000)
    failure_ratio: float = Field(0.5, gt=0.0, le=1.0)
    window_s: float = Field(60.0, gt=0)
    min_requests: int = Field(10, ge=1)
    cooldown_s: float = Field(30.0, gt=0)


class RateLimit(_Strict):
    """Requests and tokens (prompt + reply) per sliding minute; 0 or None: no limit."""

    requests_per_minute: int | None = Field(None, ge=0)
    tokens_per_minute: int | None = Field(None, ge=0)

    @property
    def active(self) -> bool:
        return bool(self.requests_per_minute) or bool(self.tokens_per_minute)


class ModelConfig(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    name: str = ""
    kind: Literal["llama_cpp", "openai"]
    # llama_cpp
    path: Path | None = None
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    # openai-compatible
    base_url: str | None = None
    provider: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    # openai-compatible: the tokens the model accepts (prompt + reply); llama_cpp uses n_ctx.
    # None: unknown, so only the provider can refuse a conversation as too long.
    context_window: int | None = Field(None, ge=256)
    # both
    defaults: GenerationDefaults = GenerationDefaults()
    price: PriceConfig | None = None
    # Resilience (chatwatch/resilience/): attempts after the first on retryable errors, with
    # exponential backoff and full jitter between retry_base_s and retry_max_s, all inside
    # timeout_s; then the fallbacks in order (on the error types of fallback_on); a
    # conversation too long for this model goes to context_fallbacks, else it is trimmed
    # (oldest turns first, the system prompt kept) or refused, as context_overflow says.
    retries: int = Field(2, ge=0, le=10)
    retry_base_s: float = Field(0.5, gt=0, le=60)
    retry_max_s: float = Field(8.0, gt=0, le=600)
    fallbacks: list[str] = []
    fallback_on: list[FallbackOn] = ["connection", "timeout", "rate_limit", "provider_error"]
    context_fallbacks: list[str] = []
    context_overflow: Literal["trim", "refuse"] = "trim"
    breaker: BreakerConfig = BreakerConfig()
    # Requests and tokens per minute this model takes from all sessions and replicas
    # together (resilience/ratelimit.py); beyond it a request is refused as rate_limited.
    rate_limit: RateLimit = RateLimit()
    # Response cache (resilience/cache.py): an exact repeat (model, settings, messages) is
    # answered from the store, by default only for reproducible settings (temperature 0 or a
    # seed). It keeps the answer text in the store: never on unless storing text is allowed.
    cache: bool = False
    cache_ttl_s: float = Field(86_400.0, gt=0)
    cache_max_entries: int = Field(10_000, ge=1)
    cache_any_settings: bool = False

    @model_validator(mode="after")
    def _kind_fields(self) -> ModelConfig:
        if self.kind == "openai":
            if not self.base_url:
                raise ValueError("an 'openai' model needs base_url")
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError(f"base_url must start with http:// or https:// (got {self.base_url!r})")
        if self.kind == "llama_cpp" and (self.base_url or self.api_key_env):
            raise ValueError("base_url and api_key_env belong to kind = 'openai' models")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def window_tokens(self) -> int | None:
        """The context window in tokens, if known."""
        return self.n_ctx if self.kind == "llama_cpp" else self.context_window

    @property
    def provider_name(self) -> str:
        if self.provider:
            return self.provider
        return "llama.cpp" if self.kind == "llama_cpp" else "openai-compatible"

    @property
    def provider_model(self) -> str:
        if self.kind == "openai":
            return self.model or self.id
        return self.path.name if self.path else "SmolLM2-135M-Instruct.Q4_1.gguf"


class AppConfig(_Strict):
    language: Literal["es", "en"] = "es"
    data_dir: Path = Path("data")
    log_dir: Path = Path("logs")
    instance: str | None = None  # names this process in records; default host:pid


class StoreConfig(_Strict):
    url: str | None = None  # default: sqlite file in data_dir
    # Records kept in memory while the store cannot take them (disk full, database down);
    # past this the oldest are dropped, counted and the drop recorded once the store is back.
    unsaved_max_records: int = Field(10_000, ge=1, le=10_000_000)
    # How long a request's own commit waits for another process's write lock before its
    # record joins the in-memory backlog (written in the background): the reply never waits
    # longer than this for the store.
    request_lock_wait_s: float = Field(1.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sqlite", "postgresql")):
            raise ValueError(f"only sqlite:// and postgresql:// URLs are supported (got {v.split(':')[0]!r})")
        return v


class LogsConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_mb: float = Field(20.0, gt=0)


class RetentionConfig(_Strict):
    raw_days: float = Field(30, gt=0)
    rollup_days: float = Field(400, gt=0)
    log_days: float = Field(14, gt=0)
    interval_minutes: float = Field(60, gt=0)


class PrivacyConfig(_Strict):
    capture_content: bool = False


class DashboardConfig(_Strict):
    refresh_seconds: float = Field(5.0, ge=1)
    exact_percentiles_max_rows: int = Field(50_000, ge=100)


class AlertRuleConfig(_Strict):
    name: str = Field(min_length=1)
    kind: Literal[
        "error_rate",
        "consecutive_failures",
        "latency_p95",
        "slow_response",
        "ttft_p95",
        "daily_cost",
        "memory",
        "no_success",
        "circuit_open",
        # Compared with normal (alerts/baseline.py): threshold is a ratio to the baseline.
        "latency_p95_anomaly",
        "ttft_p95_anomaly",
        "error_rate_anomaly",
        "traffic_drop",
    ]
    threshold: float = 0.0
    model: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    window_minutes: float = Field(5, gt=0)
    min_requests: int = Field(1, ge=0)
    for_minutes: float = Field(0, ge=0)
    enabled: bool = True
    # When a window has too few requests to measure (alerts/engine.py): "keep" the last
    # state (a firing alert stays firing and says "no data"), "resolve" a firing alert as
    # "resolved: no data" (never as a recovery), "zero" measures the empty window as 0
    # (error rate 0, traffic 0: traffic_drop fires, the others resolve), "notify" makes no
    # data itself fire (after for_minutes) as "no data for N minutes".
    no_data: Literal["keep", "resolve", "zero", "notify"] = "keep"
    # Rules compared with normal only (alerts/baseline.py; ignored by other kinds). What
    # normal is: "daily" the same window of the day on each of the past 7 days, "recent" the
    # `baseline_windows` windows of the same length right before this one (no daily cycle,
    # no week of history needed). How far from it fires: "ratio" at `threshold` times the
    # baseline and outside its band, "z" at `threshold` baseline standard deviations from
    # its mean (above it; below it for traffic_drop).
    baseline: Literal["daily", "recent"] = "daily"
    baseline_windows: int = Field(6, ge=2, le=288)
    score: Literal["ratio", "z"] = "ratio"


class AlertsConfig(_Strict):
    notify_env: list[str] = []
    notify: list[str] = []
    renotify_minutes: float = Field(60, gt=0)
    evaluate_every_s: float = Field(30, gt=0)
    rules: list[AlertRuleConfig] = []


class AuthConfig(_Strict):
    """Sign-in for the app (chatwatch/ui/auth.py). "password": one shared password whose
    slow hash (argon2 or scrypt, made by `chatwatch hash-password`) is read from the
    environment variable or Streamlit secret named `password_hash_env`; "oidc": Streamlit's
    st.login with the provider configured in secrets.toml ([auth] or [auth.<oidc_provider>]).
    With either, the dashboard, requests, alerts, compare and exports need sign-in; the chat
    too when protect_chat is true. After max_failures wrong passwords from one session or
    client, further tries wait lockout_s seconds."""

    mode: Literal["none", "password", "oidc"] = "none"
    protect_chat: bool = False
    password_hash_env: str = Field("CHATWATCH_PASSWORD_HASH", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    oidc_provider: str | None = None
    max_failures: int = Field(5, ge=1, le=1000)
    lockout_s: float = Field(60.0, gt=0)


class PrometheusConfig(_Strict):
    """The /metrics endpoint (chatwatch/exporters/prometheus.py), one per process, on its own
    port. With token_env set, scrapes must send `Authorization: Bearer <that variable>`."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)  # 0: any free port (tests)
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class OtelConfig(_Strict):
    """OpenTelemetry export (chatwatch/exporters/otel.py): one span per attempt and the GenAI
    client metrics, over OTLP/HTTP to `endpoint` (the collector's base URL; /v1/traces and
    /v1/metrics are appended). Off the request path: batched on a background thread.
    capture_content attaches prompt and reply text to spans, and only when [privacy]
    capture_content is on too. Headers (e.g. an API key) come from the environment
    variable named by headers_env, as "key=value,key2=value2"."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318"
    service_name: str = "chatwatch"
    capture_content: bool = False
    timeout_s: float = Field(5.0, gt=0, le=120)
    metric_interval_s: float = Field(15.0, gt=0)
    headers_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("endpoint")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must start with http:// or https:// (got {v!r})")
        return v.rstrip("/")


class ArenaConfig(_Strict):
    """The compare page and blind arena (chatwatch/ui/views/compare.py, arena.py): which
    models the arena may draw (empty: all), and how many votes a model needs before the
    leaderboard ranks it rather than saying "too few votes"."""

    models: list[str] = []
    min_votes: int = Field(10, ge=1)
    bootstrap_rounds: int = Field(200, ge=10, le=10_000)


class LimitsConfig(_Strict):
    """Per browser session (or CLI user) limits, across models and replicas."""

    per_session: RateLimit = RateLimit()


class BudgetConfig(_Strict):
    """A spending limit per UTC day or month, for all models or one (resilience/budget.py).
    Each attempt reserves what it may cost at most (its prompt's estimated tokens and
    max_tokens at the model's price) before it runs, atomically in the store, and settles
    the real cost after; so processes and replicas racing cannot overspend by more than the
    requests already in flight. action: "block" refuses (error type budget_exceeded, naming
    the budget and when it resets), "fallback" sends the request to `fallback`, "warn" lets
    it through. notify_at: fractions of the limit announced through the alert channels once
    per period. limit_tokens optionally bounds input + output tokens the same way."""

    name: str = Field(min_length=1, max_length=200)
    period: Literal["day", "month"] = "day"
    model: str | None = None
    limit_usd: float | None = Field(None, ge=0)
    limit_tokens: int | None = Field(None, ge=0)
    action: Literal["block", "fallback", "warn"] = "block"
    fallback: str | None = None
    notify_at: list[float] = [0.8]

    @model_validator(mode="after")
    def _shape(self) -> BudgetConfig:
        if self.limit_usd is None and self.limit_tokens is None:
            raise ValueError(f"budget {self.name!r} needs limit_usd or limit_tokens")
        if self.action == "fallback" and not self.fallback:
            raise ValueError(f"budget {self.name!r}: action = 'fallback' needs fallback = '<model id>'")
        for f in self.notify_at:
            if not 0 < f <= 1:
                raise ValueError(f"budget {self.name!r}: notify_at fractions must be in (0, 1] (got {f!r})")
        return self


class Settings(_Strict):
    app: AppConfig = AppConfig()
    models: list[ModelConfig] = []
    store: StoreConfig = StoreConfig()
    logs: LogsConfig = LogsConfig()
    retention: RetentionConfig = RetentionConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    dashboard: DashboardConfig = DashboardConfig()
    alerts: AlertsConfig = AlertsConfig()
    auth: AuthConfig = AuthConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    otel: OtelConfig = OtelConfig()
    arena: ArenaConfig = ArenaConfig()
    budgets: list[BudgetConfig] = []
    limits: LimitsConfig = LimitsConfig()
    prices: dict[str, PriceConfig] = {}  # "provider/model" -> price
    source: Path | None = None  # the file these came from, if any

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        seen: set[str] = set()
        for m in self.models:
            if m.id in seen:
                raise ValueError(f"two models have id {m.id!r}")
            seen.add(m.id)
        if not self.models:  # the bundled model is added when the file names none
            seen.add(DEFAULT_MODEL_ID)
        for m in self.models:
            for key in ("fallbacks", "context_fallbacks"):
                for other in getattr(m, key):
                    if other == m.id:
                        raise ValueError(f"model {m.id!r}: {key} names the model itself")
                    if other not in seen:
                        raise ValueError(f"model {m.id!r}: {key} names unknown model {other!r}")
        for other in self.arena.models:
            if other not in seen:
                raise ValueError(f"arena.models names unknown model {other!r}")
        for m in self.models:
            if m.cache and not self.privacy.capture_content:
                raise ValueError(
                    f"model {m.id!r}: cache = true keeps answer text in the store, which [privacy] "
                    "capture_content = false forbids; turn capture_content on or the cache off"
                )
        names: set[str] = set()
        for b in self.budgets:
            if b.name in names:
                raise ValueError(f"two budgets are named {b.name!r}")
            names.add(b.name)
            for key in ("model", "fallback"):
                other = getattr(b, key)
                if other is not None and other not in seen:
                    raise ValueError(f"budget {b.name!r}: {key} names unknown model {other!r}")
        return self

    def model(self, model_id: str) -> ModelConfig:
        for m in self.models:
            if m.id == model_id:
                return m
        known = ", ".join(m.id for m in self.models)
        raise ConfigError(f"unknown model {model_id!r}; configured: {known}")

    @property
    def default_model(self) -> ModelConfig:
        return self.models[0]

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.app.data_dir / 'chatwatch.db'}"


def bundled_model() -> ModelConfig:
    return ModelConfig(id=DEFAULT_MODEL_ID, name="SmolLM2 135M (local)", kind="llama_cpp")


def _describe(errors: list[dict[str, Any]], raw: dict[str, Any]) -> str:
    lines = []
    for e in errors:
        loc = _loc(e["loc"], raw)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key")
        elif e["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
        elif not loc:
            lines.append(msg)
        else:
            lines.append(
                f"{loc} = {e.get('input')!r}: {msg}"
                if "input" in e and not isinstance(e.get("input"), dict)
                else f"{loc}: {msg}"
            )
    return "; ".join(lines)


def _loc(loc: tuple, raw: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = raw
    for p in loc:
        if isinstance(p, int):
            label = f"[{p}]"
            if isinstance(node, list) and p < len(node) and isinstance(node[p], dict) and "id" in node[p]:
                label = f"[{p}] (id {node[p]['id']!r})"
            parts.append(label)
            node = node[p] if isinstance(node, list) and p < len(node) else None
        else:
            parts.append(("." if parts else "") + str(p))
            node = node.get(p) if isinstance(node, dict) else None
    return "".join(parts)


def _resolve_paths(s: Settings, base: Path) -> Settings:
    def r(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = p.expanduser()
        return p if p.is_absolute() else (base / p)

    app = s.app.model_copy(update={"data_dir": r(s.app.data_dir), "log_dir": r(s.app.log_dir)})
    models = [m.model_copy(update={"path": r(m.path)}) for m in s.models] or [bundled_model()]
    store = s.store
    if store.url and store.url.startswith("sqlite:///") and not store.url.startswith("sqlite:////"):
        rel = store.url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            store = store.model_copy(update={"url": f"sqlite:///{r(Path(rel))}"})
    return s.model_copy(update={"app": app, "models": models, "store": store})


def parse(raw: dict[str, Any], *, source: Path | None = None) -> Settings:
    where = str(source) if source else "configuration"
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid {where}: {_describe(exc.errors(), raw)}") from None
    base = source.parent if source else Path.cwd()
    return _resolve_paths(settings.model_copy(update={"source": source}), base.resolve())


def load(path: str | os.PathLike | None = None) -> Settings:
    """Load settings from `path`, else $CHATWATCH_CONFIG, else ./chatwatch.toml, else defaults."""
    explicit = path or os.environ.get(ENV_VAR)
    if explicit:
        file = Path(explicit)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
    else:
        file = Path(DEFAULT_FILE)
        if not file.is_file():
            return parse({})
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    return parse(raw, source=file.resolve())
