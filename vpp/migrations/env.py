"""Alembic's environment for vpp's store.

vpp runs migrations on a connection it hands over in ``config.attributes``
(:func:`vpp.migrations.upgrade`). The ``alembic`` command line, for writing a
new revision, passes the database as ``-x url=...`` instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import vpp.store  # noqa: F401  (the tables register on SQLModel.metadata, for autogenerate)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        compare_type=True,
        # SQLite alters most of a table only by copying it: let Alembic do that.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_given = context.config.attributes.get("connection")
if _given is not None:
    _run(_given)
else:
    _url = context.get_x_argument(as_dictionary=True).get("url")
    if not _url:
        raise SystemExit("give the database as -x url=sqlite:///var/vpp.db")
    with create_engine(_url).connect() as _connection:
        _run(_connection)
        _connection.commit()
