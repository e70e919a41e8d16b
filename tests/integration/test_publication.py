"""Publication coverage: inspection, the verdict, remediation SQL and ensure."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import psycopg
import pytest
from tests.conftest import unique_name
from tests.integration.test_capture import FIXTURE_SQL, fixture_deployment, run, scalar

from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.adapters.postgres.publication import (
    Coverage,
    inspect_publication,
    plan_publication_sql,
)
from flusso.app.ports import SourceError
from flusso.domain.config.model import (
    Deployment,
    SourceConfig,
)
from flusso.domain.documents.change import TableRef
from flusso.domain.documents.tables import required_tables

TAGS = TableRef("public", "tags")
USERS = TableRef("public", "users")


@pytest.fixture
async def fixture_db(pg_url: str) -> AsyncIterator[str]:
    run(pg_url, FIXTURE_SQL)
    yield pg_url


async def inspect(url: str, publication: str, tables: list[TableRef], manage: bool = True
                  ) -> Coverage:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await inspect_publication(conn, publication, tables, manage)


def test_remediation_quotes_identifiers_and_sorts_tables():
    tables = [TableRef("public", "reviews"), TableRef("public", "books")]
    assert plan_publication_sql(False, "flusso", tables) == (
        'CREATE PUBLICATION "flusso" FOR TABLE "public"."books", "public"."reviews";'
    )
    assert plan_publication_sql(True, 'we"ird', [TableRef("public", "orders")]) == (
        'ALTER PUBLICATION "we""ird" ADD TABLE "public"."orders";'
    )


async def test_first_prepare_creates_the_publication_then_the_slot(fixture_db, caplog):
    caplog.set_level(logging.INFO, logger="flusso.adapters.postgres")
    publication, slot = unique_name("pub"), unique_name("slot")
    before = await inspect(fixture_db, publication, fixture_deployment_tables())
    assert before.remediation == (
        f'CREATE PUBLICATION "{publication}" FOR TABLE "public"."order_items", '
        '"public"."orders", "public"."orgs", "public"."tags", "public"."user_tags", '
        '"public"."users";',
    )
    assert (before.satisfied, before.manageable, before.will_manage) == (False, True, True)

    capture = PostgresChangeCapture(fixture_db, fixture_deployment(), slot=slot,
                                    publication=publication)
    try:
        await capture.prepare()
    finally:
        await capture.close()

    after = await inspect(fixture_db, publication, fixture_deployment_tables())
    assert after.satisfied and after.missing == () and after.remediation == ()
    assert [str(t) for t in after.present] == [
        "public.order_items", "public.orders", "public.orgs", "public.tags",
        "public.user_tags", "public.users",
    ]
    steps = [r.getMessage() for r in caplog.records
             if "publication" in r.getMessage() or "replication slot" in r.getMessage()]
    assert [("publication" in s) for s in steps] == [True, False]
    assert scalar(fixture_db, "SELECT plugin FROM pg_replication_slots WHERE slot_name = %s",
                  (slot,)) == "pgoutput"


def fixture_deployment_tables() -> list[TableRef]:
    return required_tables(fixture_deployment())


async def test_an_existing_publication_is_extended_with_the_missing_tables(fixture_db):
    publication = unique_name("pub")
    run(fixture_db, f'CREATE PUBLICATION "{publication}" FOR TABLE users, orders')
    tables = fixture_deployment_tables()
    report = await inspect(fixture_db, publication, tables)
    assert report.remediation == (
        f'ALTER PUBLICATION "{publication}" ADD TABLE "public"."order_items", '
        '"public"."orgs", "public"."tags", "public"."user_tags";',
    )
    capture = PostgresChangeCapture(fixture_db, fixture_deployment(), slot=unique_name("slot"),
                                    publication=publication)
    try:
        await capture.prepare()
    finally:
        await capture.close()
    assert (await inspect(fixture_db, publication, tables)).satisfied


async def test_disabled_management_refuses_a_missing_publication_before_the_slot(fixture_db):
    """A slot decoding a publication that does not exist fails on its first change and on
    every start after, so the run stops before making one, naming the statement to run."""
    publication, slot = unique_name("pub"), unique_name("slot")
    deployment = Deployment(source=SourceConfig(manage_publication=False),
                            indexes=fixture_deployment().indexes)
    capture = PostgresChangeCapture(fixture_db, deployment, slot=slot, publication=publication)
    try:
        with pytest.raises(SourceError) as raised:
            await capture.prepare()
    finally:
        await capture.close()
    assert str(raised.value) == (
        f'publication "{publication}" does not exist and flusso will not create it '
        "(automatic publication management is disabled)"
    )
    assert f'CREATE PUBLICATION "{publication}" FOR TABLE "public"."order_items"' in (
        raised.value.hint or ""
    )
    assert scalar(fixture_db, "SELECT count(*) FROM pg_publication WHERE pubname = %s",
                  (publication,)) == 0
    assert scalar(fixture_db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                  (slot,)) == 0


async def test_disabled_management_warns_about_an_incomplete_publication_and_changes_nothing(
    fixture_db, caplog
):
    caplog.set_level(logging.WARNING)
    publication = unique_name("pub")
    run(fixture_db, f'CREATE PUBLICATION "{publication}" FOR TABLE users')
    deployment = Deployment(source=SourceConfig(manage_publication=False),
                            indexes=fixture_deployment().indexes)
    capture = PostgresChangeCapture(fixture_db, deployment, slot=unique_name("slot"),
                                    publication=publication)
    try:
        await capture.prepare()
    finally:
        await capture.close()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "automatic publication management is disabled" in warning
    assert f'ALTER PUBLICATION "{publication}" ADD TABLE "public"."order_items"' in warning
    assert scalar(fixture_db, "SELECT count(*) FROM pg_publication_tables WHERE pubname = %s",
                  (publication,)) == 1


async def test_a_role_owning_nothing_gets_blockers_and_the_run_continues(fixture_db, caplog):
    caplog.set_level(logging.WARNING)
    publication, role = unique_name("pub"), unique_name("role")
    run(fixture_db, f'CREATE PUBLICATION "{publication}" FOR TABLE users, orders, orgs, '
                    "order_items, user_tags")
    run(fixture_db, f"CREATE ROLE {role} LOGIN REPLICATION")
    role_url = fixture_db.replace("postgres@", f"{role}@", 1)
    capture = PostgresChangeCapture(role_url, fixture_deployment(), slot=unique_name("slot"),
                                    publication=publication)
    try:
        await capture.prepare()
        report = capture.coverage
    finally:
        await capture.close()
        with psycopg.connect(fixture_db, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(f"DROP ROLE {role}".encode())
    assert report is not None
    assert report.blockers == (
        "role does not own table public.tags", f'role does not own publication "{publication}"',
    )
    assert (report.manageable, report.will_manage) == (False, False)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (f'role does not own table public.tags; role does not own publication '
            f'"{publication}"') in warning
    assert f'ALTER PUBLICATION "{publication}" ADD TABLE "public"."tags";' in warning


async def test_a_keyless_table_is_a_blocker_even_for_a_superuser(fixture_db):
    run(fixture_db, "CREATE TABLE nokey (a int, b text)")
    run(fixture_db, "CREATE TABLE fullkey (a int, b text); "
                    "ALTER TABLE fullkey REPLICA IDENTITY FULL")
    report = await inspect(fixture_db, unique_name("pub"),
                           [TableRef("public", "nokey"), TableRef("public", "fullkey")])
    assert report.manageable is False
    assert len(report.blockers) == 1
    assert report.blockers[0].startswith("table public.nokey has no primary key or replica identity")


async def test_a_superuser_verdict_is_manageable_without_blockers(fixture_db):
    report = await inspect(fixture_db, unique_name("pub"), [TableRef("public", "ghost"), USERS])
    assert report.manageable is True and report.blockers == ()
    assert [str(t) for t in report.missing] == ["public.ghost", "public.users"]


async def test_for_all_tables_publications_count_as_covering(fixture_db):
    publication = unique_name("pub")
    run(fixture_db, f'CREATE PUBLICATION "{publication}" FOR ALL TABLES')
    report = await inspect(fixture_db, publication, [TAGS, USERS], manage=False)
    assert report.satisfied and report.present == (TAGS, USERS)
    assert report.to_json() == {
        "satisfied": True, "manageable": True, "will_manage": False, "exists": True,
        "present": ["public.tags", "public.users"], "missing": [], "missing_actions": [],
        "blockers": [], "remediation": [], "via_root_fix": None,
    }
