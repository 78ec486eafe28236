"""The store's schema, versioned with Alembic: scripts in ``versions/``, run by :func:`upgrade`.

Revisions ship inside the package (``vpp/migrations/versions/``) and run on a
connection vpp hands to Alembic (``env.py``), so no ``alembic.ini`` is needed.
A store is in one of four states (:func:`schema_state`):

- ``empty``: none of vpp's tables; :class:`vpp.store.Store` creates it at
  :data:`HEAD` on first open (a fresh ``var/vpp.db`` just works);
- ``current``: at :data:`HEAD`;
- ``old``: vpp's tables without a version (written before vpp used Alembic)
  or at an older revision: refused on open until ``vpp db upgrade`` runs;
- ``newer``: at a revision this vpp does not know (a newer vpp upgraded it):
  refused, never downgraded.

A new schema change is a new revision: ``alembic -c vpp/migrations/alembic.ini
-x url=sqlite:///var/vpp.db revision --autogenerate -m what`` on a store at head,
then review it (``docs/store.md``); ``tests/vpp/test_migrations.py`` checks head
matches the tables of :mod:`vpp.store` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

__all__ = ["HEAD", "SchemaState", "schema_state", "upgrade"]

log = structlog.get_logger(__name__)

SCRIPTS = Path(__file__).resolve().parent

#: The tables of the first schema vpp shipped: any of them present means vpp wrote here.
VPP_TABLES = ("parks", "assets", "bids", "awards", "setpoints", "telemetry", "settlements")

#: Held (transaction-scoped) while a PostgreSQL store is upgraded, so two processes
#: opening one fresh store do not both create it. Any constant unique to vpp.
_PG_LOCK_KEY = 0x7670_7000_0017


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _head() -> str:
    head = _script().get_current_head()
    assert head is not None, "vpp/migrations/versions holds no revision"
    return head


HEAD: str = _head()

Kind = Literal["empty", "current", "old", "newer"]


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema stands against this vpp's :data:`HEAD`."""

    kind: Kind
    revision: str | None  # None: no Alembic version (empty, or written before Alembic)

    def describe(self) -> str:
        """``at revision 0001`` / ``from before versioned migrations`` / ``empty``."""
        if self.revision is not None:
            return f"at revision {self.revision}"
        return "empty" if self.kind == "empty" else "from before versioned migrations (no revision)"


def _state(connection: Connection) -> SchemaState:
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None:
        tables = set(inspect(connection).get_table_names())
        kind: Kind = "old" if tables & set(VPP_TABLES) else "empty"
        return SchemaState(kind, None)
    if revision == HEAD:
        return SchemaState("current", revision)
    known = {script.revision for script in _script().walk_revisions()}
    return SchemaState("old" if revision in known else "newer", revision)


def schema_state(engine: Engine) -> SchemaState:
    """The store's schema state (reads only the version table and the table names)."""
    with engine.connect() as connection:
        return _state(connection)


def upgrade(engine: Engine) -> tuple[SchemaState, SchemaState]:
    """Bring the store to :data:`HEAD`, keeping its data; returns the states before and after.

    Idempotent: a store at head is left alone. One transaction (DDL is
    transactional on PostgreSQL and SQLite), under a lock so concurrent
    callers take turns: an advisory lock on PostgreSQL, SQLite's write lock
    (``BEGIN IMMEDIATE``; a caller waits the driver's busy timeout). A store at a
    revision this vpp does not know is left alone (``newer`` before and after).
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        elif connection.dialect.name == "sqlite":
            # SQLite's DDL is transactional too, but the driver only opens a transaction
            # before DML: open it here, taking the write lock, so the upgrade lands whole
            # and a second process waits for it instead of seeing half a schema.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        before = _state(connection)
        if before.kind in ("current", "newer"):
            return before, before
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = _state(connection)
    if before.kind == "empty":  # every first use: as quiet as create_all was
        log.debug("store_schema_created", revision=after.revision)
    else:
        log.info("store_schema_upgraded", before=before.revision or "none", after=after.revision)
    return before, after
