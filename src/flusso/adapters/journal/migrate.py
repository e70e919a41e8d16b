"""Bring a journal database to the newest schema with Alembic (`upgrade head`), from an
installed package: the migrations ship as `flusso.adapters.journal.migrations`, a link to
the top-level `alembic/` directory that setuptools copies into the wheel."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine


def migrations_dir() -> Path:
    return Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def upgrade(engine: Engine) -> None:
    """Run every pending migration in one transaction on `engine`."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
