"""The alert tables (created by migration m0010, "no data" columns by m0012, a baseline
rule's `baseline`, `baseline_windows` and `score` and an event's `score` by m0036) and
every read and write of them. The store runs its migrations when it opens, so every column
here exists by the time a rule is read.

Writes run in the store's write transactions (BEGIN IMMEDIATE on SQLite); rule and state
rows are created with INSERT ... ON CONFLICT DO NOTHING so several processes starting at
once agree without errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

import sqlalchemy as sa

from chatwatch.alerts.defaults import DEFAULT_RULES
from chatwatch.alerts.model import AlertEvent, AlertState, Rule
from chatwatch.config import AlertRuleConfig
from chatwatch.store.db import write_transaction
from chatwatch.store.rollups import INSERT

metadata = sa.MetaData()

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("model", sa.String(200)),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("window_minutes", sa.Float, nullable=False),
    sa.Column("min_requests", sa.Integer, nullable=False),
    sa.Column("for_minutes", sa.Float, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("no_data", sa.String(16), nullable=False, server_default="keep"),
    sa.Column("baseline", sa.String(16), nullable=False, server_default="daily"),
    sa.Column("baseline_windows", sa.Integer, nullable=False, server_default="6"),
    sa.Column("score", sa.String(16), nullable=False, server_default="ratio"),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("config_hash", sa.String(64)),
    sa.Column("edited", sa.Boolean, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("rule", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("pending_since_us", sa.BigInteger),
    sa.Column("firing_since_us", sa.BigInteger),
    sa.Column("last_notified_us", sa.BigInteger),
    sa.Column("notify_seq", sa.Integer, nullable=False),
    sa.Column("resolved_us", sa.BigInteger),
    sa.Column("value", sa.Float),
    sa.Column("model", sa.String(200)),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("model", sa.String(200)),
    sa.Column("scope", sa.String(200)),
    sa.Column("firing_since_us", sa.BigInteger, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("instance", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(16)),
    sa.Column("samples", sa.Integer),
    sa.Column("window_minutes", sa.Float),
    sa.Column("min_requests", sa.Integer),
    sa.Column("score", sa.String(16)),
    sa.UniqueConstraint("rule", "firing_since_us", "state", "seq", name="uq_alert_events_claim"),
    sa.Index("ix_alert_events_at", "at_us"),
    sa.Index("ix_alert_events_rule_at", "rule", "at_us"),
)

_RULE_FIELDS = tuple(f.name for f in fields(Rule))
_STATE_FIELDS = tuple(f.name for f in fields(AlertState))
log = logging.getLogger("chatwatch.alerts")

write = write_transaction  # the store's write transaction (BEGIN IMMEDIATE on SQLite)


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    if rows:
        conn.execute(INSERT[conn.dialect.name](table).on_conflict_do_nothing(), rows)


def _rule(row) -> Rule:
    m = row._mapping
    return Rule(**{f: m[f] for f in _RULE_FIELDS if f in m})


def _rule_row(conn: sa.Connection, rule: Rule, now_us: int, instance: str) -> dict:
    row = {f: getattr(rule, f) for f in _RULE_FIELDS}
    row.update(name=rule.name.strip(), min_requests=int(rule.min_requests), updated_us=now_us, updated_by=instance)
    return row


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    inserted: list[str]
    replaced: list[str]  # the config version changed: config values overwrite page edits
    kept: list[str]
    removed: list[str]  # config rules no longer in the config
    defaults: list[str] = field(default_factory=list)  # built-in default rules stored now


def seed_rules(
    engine: sa.Engine,
    configured: Sequence[AlertRuleConfig],
    *,
    now_us: int,
    instance: str,
    defaults: Sequence[AlertRuleConfig] = DEFAULT_RULES,
) -> SeedResult:
    """Bring config rules into the store. A rule edited on the page keeps its edits while its
    config version (hash) is unchanged; a new config version overwrites it.

    On a store that never held an alert rule (not even a deleted one), with no rule in the
    config, the built-in `defaults` are stored too, once: from then on they are ordinary
    rules, and no later start re-creates, re-enables or overwrites them."""
    wanted = {cfg.name.strip(): Rule.from_config(cfg) for cfg in configured}
    result = SeedResult([], [], [], [])
    with write(engine) as conn:
        stored = {r.name: r for r in map(_rule, conn.execute(sa.select(alert_rules)))}
        if not stored and not wanted and defaults:
            rows = [_rule_row(conn, Rule(**cfg.model_dump(), origin="default"), now_us, instance) for cfg in defaults]
            # Replicas starting together on an empty store: the first insert wins.
            _insert_ignore(conn, alert_rules, rows)
            _insert_ignore(conn, alert_state, [_new_state(r["name"], now_us) for r in rows])
            result.defaults.extend(r["name"] for r in rows)
        for name, rule in wanted.items():
            old = stored.get(name)
            if old is None:
                # Replicas starting together seed at once: the first insert wins.
                _insert_ignore(conn, alert_rules, [_rule_row(conn, rule, now_us, instance)])
                result.inserted.append(name)
            elif old.config_hash != rule.config_hash:
                conn.execute(
                    alert_rules.update()
                    .where(alert_rules.c.name == name)
                    .values(_rule_row(conn, rule, now_us, instance))
                )
                result.replaced.append(name)
            else:
                result.kept.append(name)
        for name, old in stored.items():
            if old.origin == "config" and name not in wanted and not (old.deleted and old.config_hash is None):
                # Forget its hash too, so putting it back in the config brings it back.
                conn.execute(
                    alert_rules.update()
                    .where(alert_rules.c.name == name)
                    .values(deleted=True, config_hash=None, updated_us=now_us, updated_by=instance)
                )
                result.removed.append(name)
        _insert_ignore(conn, alert_state, [_new_state(n, now_us) for n in wanted])
    return result


def load_rules(conn: sa.Connection, *, include_deleted: bool = False) -> list[Rule]:
    stmt = sa.select(alert_rules).order_by(alert_rules.c.name)
    if not include_deleted:
        stmt = stmt.where(alert_rules.c.deleted.is_(False))
    return [_rule(r) for r in conn.execute(stmt)]


def get_rule(conn: sa.Connection, name: str) -> Rule | None:
    row = conn.execute(sa.select(alert_rules).where(alert_rules.c.name == name)).first()
    return None if row is None else _rule(row)


def save_rule(engine: sa.Engine, rule: Rule, *, create: bool, now_us: int, instance: str) -> str | None:
    """Create or update a rule from the page; returns a problem key (err.exists,
    err.missing) or None.
    Editing a config rule marks it `edited`: it wins until the config's version changes."""
    name = rule.name.strip()
    with write(engine) as conn:
        old = get_rule(conn, name)
        if create:
            if old is not None and not old.deleted:
                return "err.exists"
            new = rule.with_settings(name=name, origin="page", config_hash=None, edited=False, deleted=False)
            if old is None:
                stmt = INSERT[conn.dialect.name](alert_rules).values(_rule_row(conn, new, now_us, instance))
                # RETURNING, not rowcount: drivers report -1 for INSERT ... ON CONFLICT.
                if conn.execute(stmt.on_conflict_do_nothing().returning(alert_rules.c.name)).first() is None:
                    return "err.exists"  # another process created it a moment ago
            else:  # re-using the name of a deleted rule
                conn.execute(
                    alert_rules.update()
                    .where(alert_rules.c.name == name)
                    .values(_rule_row(conn, new, now_us, instance))
                )
        else:
            if old is None or old.deleted:
                return "err.missing"
            new = rule.with_settings(
                name=name, origin=old.origin, config_hash=old.config_hash, edited=old.origin == "config", deleted=False
            )
            conn.execute(
                alert_rules.update().where(alert_rules.c.name == name).values(_rule_row(conn, new, now_us, instance))
            )
        _insert_ignore(conn, alert_state, [_new_state(name, now_us)])
    return None


def delete_rule(engine: sa.Engine, name: str, *, now_us: int, instance: str) -> bool:
    """Soft delete: the engine resolves it if firing; a config rule stays deleted until its
    config version changes."""
    with write(engine) as conn:
        res = conn.execute(
            alert_rules.update()
            .where(alert_rules.c.name == name, alert_rules.c.deleted.is_(False))
            .values(deleted=True, updated_us=now_us, updated_by=instance)
        )
        return res.rowcount == 1


def reset_rule(engine: sa.Engine, cfg: AlertRuleConfig, *, now_us: int, instance: str) -> None:
    """Put a config rule back to its config version (drops page edits)."""
    rule = Rule.from_config(cfg)
    with write(engine) as conn:
        conn.execute(
            alert_rules.update().where(alert_rules.c.name == rule.name).values(_rule_row(conn, rule, now_us, instance))
        )


# --- state ---------------------------------------------------------------------------------


def _new_state(rule: str, now_us: int) -> dict:
    return dict(rule=rule, state="ok", version=0, notify_seq=0, updated_us=now_us)


def load_states(conn: sa.Connection) -> dict[str, AlertState]:
    return {
        r.rule: AlertState(**{f: r._mapping[f] for f in _STATE_FIELDS}) for r in conn.execute(sa.select(alert_state))
    }


def ensure_states(engine: sa.Engine, rules: Iterable[str], *, now_us: int) -> None:
    rows = [_new_state(r, now_us) for r in rules]
    if rows:
        with write(engine) as conn:
            _insert_ignore(conn, alert_state, rows)


def claim_transition(
    engine: sa.Engine, current: AlertState, changes: dict, event: AlertEvent | None
) -> AlertEvent | bool:
    """Move a rule's state from `current` (as read) to `changes`, and store `event`, in one
    transaction — only if nobody moved it since: the UPDATE matches the version read, so of
    several processes evaluating at once exactly one wins (SQLite serializes writers;
    PostgreSQL re-checks the WHERE on the row it waited for). Returns the stored event (with
    its id), True for a won transition without event, or False when another process won."""
    stmt = (
        alert_state.update()
        .where(alert_state.c.rule == current.rule, alert_state.c.version == current.version)
        .values(version=current.version + 1, **changes)
    )
    try:
        with write(engine) as conn:
            if conn.execute(stmt).rowcount != 1:
                return False
            if event is None:
                return True
            new_id = conn.execute(
                alert_events.insert().values(event.as_row()).returning(alert_events.c.id)
            ).scalar_one()
    except sa.exc.IntegrityError:
        return False  # the unique (rule, firing, state, seq) row exists: someone else won
    return AlertEvent(**{**event.as_row(), "id": new_id})


# --- events --------------------------------------------------------------------------------


def last_event_id(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(alert_events.c.id), 0))).scalar_one()


def events_after(conn: sa.Connection, event_id: int, *, limit: int = 50) -> list[AlertEvent]:
    stmt = sa.select(alert_events).where(alert_events.c.id > event_id).order_by(alert_events.c.id).limit(limit)
    return [AlertEvent.from_row(r) for r in conn.execute(stmt)]


def history(
    conn: sa.Connection,
    *,
    since_us: int | None = None,
    rules: Sequence[str] = (),
    states: Sequence[str] = (),
    severities: Sequence[str] = (),
    limit: int = 500,
) -> list[AlertEvent]:
    stmt = sa.select(alert_events)
    if since_us is not None:
        stmt = stmt.where(alert_events.c.at_us >= since_us)
    if rules:
        stmt = stmt.where(alert_events.c.rule.in_(list(rules)))
    if states:
        stmt = stmt.where(alert_events.c.state.in_(list(states)))
    if severities:
        stmt = stmt.where(alert_events.c.severity.in_(list(severities)))
    stmt = stmt.order_by(alert_events.c.at_us.desc(), alert_events.c.id.desc()).limit(limit)
    return [AlertEvent.from_row(r) for r in conn.execute(stmt)]


@dataclass(frozen=True)
class ActiveAlert:
    rule: Rule
    state: AlertState


def active(conn: sa.Connection, *, include_pending: bool = False) -> list[ActiveAlert]:
    """Firing alerts of rules that are enabled and not deleted, most severe first."""
    states = ("firing", "pending") if include_pending else ("firing",)
    stmt = (
        sa.select(alert_rules, alert_state)
        .join(alert_state, alert_state.c.rule == alert_rules.c.name)
        .where(alert_state.c.state.in_(states), alert_rules.c.enabled.is_(True), alert_rules.c.deleted.is_(False))
    )
    out = []
    for row in conn.execute(stmt):
        m = row._mapping
        rule = Rule(**{f: m[alert_rules.c[f]] for f in _RULE_FIELDS if alert_rules.c[f] in m})
        state = AlertState(**{f: m[alert_state.c[f]] for f in _STATE_FIELDS})
        out.append(ActiveAlert(rule, state))
    rank = {"critical": 0, "warning": 1, "info": 2}
    out.sort(key=lambda a: (a.state.state != "firing", rank.get(a.rule.severity, 3), a.rule.name))
    return out
