"""Alembic environment of the lifecycle journal.

flusso runs it through `flusso.adapters.journal.migrate.upgrade`, which hands over an open
connection in `config.attributes["connection"]`; `alembic -x journal=<file> upgrade head`
(with `script_location` pointing here) works on a file too. Importing this module outside
an Alembic run does nothing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine


def _in_alembic() -> bool:
    try:
        context.config  # noqa: B018 - the proxy exists only while Alembic runs this file
    except (AttributeError, NameError):
        return False
    return True


def _run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    journal = context.get_x_argument(as_dictionary=True).get("journal")
    url = f"sqlite:///{journal}" if journal else config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            context.configure(connection=conn, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if _in_alembic():
    _run()
