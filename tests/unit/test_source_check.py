"""The pure rules behind `flusso check`'s source findings: each names the object and its fix."""

from __future__ import annotations

import pytest

from flusso.domain.config.config_file import parse_config
from flusso.domain.documents.change import TableRef
from flusso.domain.source_check import (
    IdentityFacts,
    RoleFacts,
    ServerSettings,
    SourceFacts,
    SourceNeeds,
    TableNeed,
    TableSourceFacts,
    diagnose_replication,
    diagnose_source,
    may_replicate,
    plan_source_needs,
)

READY = ServerSettings(version_num=150004, wal_level="logical", database="shop")
ROLE = RoleFacts("flusso", replication=True)


def found(server: ServerSettings = READY, role: RoleFacts = ROLE, slot: str = "flusso"):
    return [(d.field, d.message, d.fix) for d in diagnose_replication(server, role, slot)]


def test_a_ready_server_and_role_have_no_finding():
    assert found() == []


@pytest.mark.parametrize(("service", "fix"), [
    ("self-hosted", "ALTER SYSTEM SET wal_level = logical;  -- then restart Postgres"),
    ("rds", "set rds.logical_replication = 1 in the DB parameter group, then reboot"),
    ("cloudsql", "set the database flag cloudsql.logical_decoding = on, then restart the instance"),
    ("azure", "set the server parameter wal_level = logical (az postgres flexible-server "
              "parameter set --name wal_level --value logical), then restart"),
    ("neon", "enable logical replication in the project settings (Settings → Logical Replication)"),
])
def test_wal_level_is_fixed_the_way_each_service_allows(service, fix):
    server = ServerSettings(150004, "replica", service=service)
    assert found(server) == [(
        "wal_level",
        "the server runs with wal_level = replica; logical replication needs wal_level = logical",
        fix,
    )]


@pytest.mark.parametrize(("service", "fix"), [
    ("self-hosted", 'ALTER ROLE "flusso" REPLICATION;  -- as a superuser'),
    ("rds", 'GRANT rds_replication TO "flusso";  -- as the master user (RDS and Aurora)'),
    ("cloudsql", 'ALTER USER "flusso" WITH REPLICATION;  -- as a cloudsqlsuperuser member '
                 "(the instance needs the flag cloudsql.logical_decoding = on)"),
    ("azure", 'ALTER ROLE "flusso" WITH REPLICATION;  -- as the server admin (azure_pg_admin)'),
    ("supabase", 'ALTER ROLE "flusso" WITH REPLICATION;  -- as the postgres role'),
    ("neon", 'ALTER ROLE "flusso" WITH REPLICATION;  -- as the project owner; roles made in the '
             "Neon console are neon_superuser members and already may"),
])
def test_the_replication_right_is_granted_the_way_each_service_allows(service, fix):
    server = ServerSettings(150004, "logical", service=service)
    assert found(server, RoleFacts("flusso")) == [
        ("role", "role flusso may not stream changes (no REPLICATION right)", fix),
    ]


@pytest.mark.parametrize("role", [
    RoleFacts("a", superuser=True),
    RoleFacts("b", replication=True),
    RoleFacts("c", member_of=frozenset({"rds_replication"})),
    RoleFacts("d", member_of=frozenset({"neon_superuser"})),
])
def test_replication_rights_as_services_grant_them_are_recognised(role):
    assert may_replicate(role)


def test_membership_in_an_unrelated_admin_role_is_not_a_replication_right():
    assert not may_replicate(RoleFacts("e", member_of=frozenset({"cloudsqlsuperuser"})))


def test_no_free_slot_or_wal_sender_is_found_with_what_to_do():
    server = ServerSettings(150004, "logical", max_replication_slots=4, used_replication_slots=4,
                            max_wal_senders=2, used_wal_senders=2)
    assert [f[0] for f in found(server)] == ["max_replication_slots", "max_wal_senders"]
    assert "raise max_replication_slots and restart" in found(server)[0][2]


def test_an_existing_slot_needs_no_free_one():
    server = ServerSettings(150004, "logical", max_replication_slots=4, used_replication_slots=4,
                            slot_exists=True, slot_plugin="pgoutput", slot_database="shop",
                            database="shop")
    assert found(server) == []


def test_a_slot_of_another_database_is_found():
    server = ServerSettings(150004, "logical", slot_exists=True, slot_plugin="pgoutput",
                            slot_database="other", database="shop")
    assert found(server)[0][:2] == (
        "slot flusso", "replication slot flusso belongs to database other, not shop",
    )


def test_an_old_server_is_found():
    assert found(ServerSettings(120000, "logical"))[0][:2] == (
        "server_version", "the server is PostgreSQL 12; flusso needs 13 or newer",
    )


def test_needs_name_every_table_its_columns_and_whole_row_reads():
    toml = ('[source]\ntype = "postgres"\n\n[[index]]\nname = "users"\n'
            'schema = "users.schema.yml"\nenabled = true\n')
    schema = """
version: 1
table: users
primary_key: id
fields:
  - integer: id
    required: true
  - has_many: orders
    table: orders
    foreign_key: user_id
    primary_key: id
    fields:
      - decimal: total
        required: true
  - belongs_to: org
    table: orgs
    column: org_id
    primary_key: id
    required: false
    fields:
      - keyword: name
        required: true
"""
    deployment = parse_config(toml, path="flusso.toml", read_schema=lambda _: schema)
    needs = plan_source_needs(deployment, slot="s1")
    assert needs.slot == "s1"
    assert [(n.table.name, sorted(n.columns), n.whole_row, n.is_root, n.declared_key, n.indexes,
             sorted(n.parent_columns)) for n in needs.tables] == [
        ("orders", ["id", "total", "user_id"], True, False, None, ("users",), ["user_id"]),
        ("orgs", ["id", "name"], False, False, None, ("users",), []),
        ("users", ["id", "org_id"], False, True, "id", ("users",), []),
    ]


def test_a_superuser_is_not_asked_for_grants():
    need = TableNeed(TableRef("public", "t"), frozenset({"a"}), is_root=True, declared_key="a",
                     indexes=("t",))
    facts = SourceFacts(
        RoleFacts("root", superuser=True), READY,
        {need.table: TableSourceFacts(
            select=False, unreadable_columns=("a",), primary_key=("a",),
            identities=(IdentityFacts(need.table, "d", ("a",), ("a",)),),
        )},
    )
    assert diagnose_source(SourceNeeds((need,)), facts) == []
