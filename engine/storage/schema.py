"""The database schema (SQLAlchemy Core); Alembic migrations mirror it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (stored naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


def utcnow() -> datetime:
    return datetime.now(UTC)


areas = Table(
    "areas",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    # {"service", "trigger", "params"}; secret params hold None (value in the keyring).
    Column("trigger", JSON, nullable=False),
    Column("condition", Text, nullable=True),
    # [{"uid", "service", "reaction", "params"}, ...]
    Column("reactions", JSON, nullable=False),
    Column("catch_up", String(8), nullable=False, default="skip"),
    Column("interval", Float, nullable=True),
    # sha256 of the webhook token; the token itself lives in the keyring.
    Column("webhook_hash", String(64), nullable=True, unique=True),
    Column("paused_reason", Text, nullable=True),
    Column("failure_streak", Integer, nullable=False, default=0),
    # its lifecycle state (engine/lifecycle.py): active | snoozed | waiting | paused |
    # needs_account | off | done
    Column("state", String(16), nullable=False, default="active"),
    Column("snoozed_until", UTCDateTime, nullable=True),
    # a snoozed poll fires what it finds once the snooze ends (else: remembered, not fired)
    Column("catch_up_after_snooze", Boolean, nullable=False, default=False),
    # {"active_from", "active_until", "only_during": {days, from, until, timezone},
    #  "catch_up_after_snooze"} as in area files (engine/windows.py); None: always
    Column("window", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("area_id", String(36), ForeignKey("areas.id", ondelete="CASCADE"), nullable=False),
    # schedule | poll | webhook | manual | replay
    Column("source", String(12), nullable=False),
    Column("dedup_key", String(300), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    # pending -> done
    Column("status", String(10), nullable=False, default="pending"),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("area_id", "dedup_key", name="uq_events_area_dedup"),
    Index("ix_events_status", "status"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("event_id", Integer, ForeignKey("events.id", ondelete="SET NULL"), nullable=True),
    Column("area_id", String(36), ForeignKey("areas.id", ondelete="CASCADE"), nullable=False),
    # running | succeeded | failed | skipped | missed | interrupted
    Column("status", String(12), nullable=False),
    Column("resumed", Boolean, nullable=False, default=False),
    Column("trigger_payload", JSON, nullable=True),
    Column("condition", JSON, nullable=True),
    # [{"service", "reaction", "status", "params", "output", "error", "attempts": [...]}]
    Column("steps", JSON, nullable=False),
    Column("error", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_runs_area_started", "area_id", "started_at"),
    Index("ix_runs_event", "event_id"),
)

area_transitions = Table(
    "area_transitions",
    metadata,
    # each change of an area's state; the newest TRANSITIONS_PER_AREA per area are kept
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("area_id", String(36), ForeignKey("areas.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("cause", Text, nullable=False),
    Index("ix_area_transitions_area", "area_id", "id"),
)

seen_keys = Table(
    "seen_keys",
    metadata,
    Column("area_id", String(36), ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
)

trigger_state = Table(
    "trigger_state",
    metadata,
    Column("area_id", String(36), ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True),
    # the poll trigger's own state (ETag, cursors)
    Column("state", JSON, nullable=False),
    Column("primed", Boolean, nullable=False, default=False),
    Column("last_check_at", UTCDateTime, nullable=True),
    Column("last_fired_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
)

polls = Table(
    "polls",
    metadata,
    # one check of a polling trigger; the newest POLLS_PER_AREA per area are kept
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("area_id", String(36), ForeignKey("areas.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("seconds", Float, nullable=False),
    # new | nothing new | not modified | primed | failed | snoozed | waiting (found new
    # items while the area did not fire: remembered, not fired)
    Column("outcome", String(12), nullable=False),
    Column("items", Integer, nullable=False, default=0),
    Column("new", Integer, nullable=False, default=0),
    # the user-facing reason of a failed check (URLs redacted); None when it worked
    Column("error", Text, nullable=True),
    Column("next_at", UTCDateTime, nullable=True),
    # interval | backoff | retry-after
    Column("next_why", String(12), nullable=True),
    Index("ix_polls_area", "area_id", "id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("service_id", String(64), nullable=False),
    # oauth2 | api_key
    Column("kind", String(10), nullable=False),
    # who it is at the provider (e.g. a GitHub login); tokens live in the keyring only
    Column("name", String(200), nullable=False),
    Column("scopes", JSON, nullable=False),
    # ok | needs_reconnect
    Column("status", String(20), nullable=False, default="ok"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_refresh_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("service_id", "name", name="uq_accounts_service_name"),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    # the user's own OAuth app per service; its secret (if any) lives in the keyring
    Column("service_id", String(64), primary_key=True),
    Column("client_id", String(300), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

custom_oauth_providers = Table(
    "custom_oauth_providers",
    metadata,
    # an OAuth 2 provider the user declared (a self-hosted Gitea, ...): its accounts have
    # this name as their service id; its client id is in oauth_clients, the secret in the
    # keyring
    Column("name", String(64), primary_key=True),
    Column("authorize_url", Text, nullable=False),
    Column("token_url", Text, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("userinfo_url", Text, nullable=True),
    # the user-info fields that name the account, first non-empty wins
    Column("name_fields", JSON, nullable=False),
    Column("revoke_url", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

remote_clients = Table(
    "remote_clients",
    metadata,
    # a client paired with the remote control channel (engine/remote/pairing.py); only
    # its token's SHA-256 is kept, so a copy of the database lets no one in
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=True),
    # window (the desktop app, `hookline remote`) | engine (a standby engine that copies
    # the secrets: `hookline standby join`); from its code's kind (migration 0008)
    Column("kind", String(16), nullable=False, default="window"),
)

pairing_codes = Table(
    "pairing_codes",
    metadata,
    # a code `hookline pair` printed and no client has used yet: only its scrypt key
    # (engine/remote/codes.py), deleted when used and once expired
    Column("code_key", String(64), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # the kind of client it pairs (`hookline pair --standby`: engine), and no other
    Column("kind", String(16), nullable=False, default="window"),
)

engine_sites = Table(
    "engine_sites",
    metadata,
    # where each engine with the remote channel open can be reached (engine/remote/
    # sites.py), so a window attached to one follows the active engine after a takeover;
    # keyed by the engine's installation id (engine/trace.py): an engine set up with a
    # new certificate replaces its row; its fingerprint (SHA-256, hex) is no secret
    Column("installation", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("addresses", Text, nullable=False),  # JSON list: host name, then addresses
    Column("port", Integer, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)

run_ledger = Table(
    "run_ledger",
    metadata,
    # the run ledger of engines sharing a PostgreSQL database (engine/storage/ledger.py:
    # TableLedger): a run's start, steps and finish as JSON lines, written before a
    # reaction acts, deleted once the runs table has them
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("segment", String(40), nullable=False),
    Column("line", Text, nullable=False),
    Index("ix_run_ledger_segment", "segment"),
)
