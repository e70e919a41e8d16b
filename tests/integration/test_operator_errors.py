"""Operator mistakes against the real CLI: a clear `Error:` (and `hint:`), never a traceback,
exit 1 (2 for usage errors), and nothing lost or half-done.

Every case runs `python -m flusso …` as a process, the way an operator meets it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from devstack.postgres import ThrowawayPostgres
from tests.conftest import unique_name

SCHEMA = """\
version: 1
table: books
primary_key: id
fields:
  - integer: id
    required: true
  - text: title
    required: true
"""

STDOUT_CONFIG = """\
[source]
type = "postgres"

[sinks.out]
type = "stdout"

[[index]]
name = "books"
schema = "books.schema.yml"
enabled = true
"""

OPENSEARCH_CONFIG = """\
[source]
type = "postgres"

[sinks.primary]
type = "opensearch"
url = "{url}"
max_retries = 0

[[index]]
name = "books"
schema = "books.schema.yml"
enabled = true
"""

DDL = """
CREATE TABLE books (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO books VALUES (1, 'The Dispossessed'), (2, 'Invisible Cities');
"""

PASSWORD_ROLE = "pwuser"


# -- helpers ----------------------------------------------------------------------------------


def flusso(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """One `flusso` process; DATABASE_URL only when the case gives it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLUSSO_")}
    base.pop("DATABASE_URL", None)
    full = {**base, "NO_COLOR": "1", "COLUMNS": "400", "FLUSSO_LOG": "warn", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "flusso", *args],
        cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout,
    )


def run_args(tmp: Path, slot: str, *extra: str) -> list[str]:
    """`run` on free ports with a slot, publication and journal of its own."""
    return [
        "run", "--public-address", "127.0.0.1:0", "--private-address", "127.0.0.1:0",
        "--slot", slot, "--publication", slot, "--journal", str(tmp / "journal.sqlite3"),
        "--lag-poll-secs", "1", *extra,
    ]


def failed_cleanly(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The stderr of a run that failed with `code`, after checking it shows no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("Error: ", "hint: "))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def slots(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "books.schema.yml").write_text(SCHEMA)
    (tmp_path / "flusso.toml").write_text(STDOUT_CONFIG)
    return tmp_path


@pytest.fixture
def books_db(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL)
    return pg_url


@pytest.fixture(scope="module")
def replica_server() -> Iterator[ThrowawayPostgres]:
    """A cluster with wal_level=replica whose `pwuser` role must give its password."""
    server = ThrowawayPostgres(settings={"wal_level": "replica"})
    server.start()
    try:
        hba = server.data_dir / "pg_hba.conf"
        hba.write_text(
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text()
        )
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right'")
            conn.execute(DDL)
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        server.stop()


class _Answer(BaseHTTPRequestHandler):
    status = 401
    body = b'{"error":"Unauthorized","status":401}'

    def _reply(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _reply

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a TLS client may leave a handler waiting for a request line


@pytest.fixture
def answers_401() -> Iterator[str]:
    """A plain-HTTP server answering 401 to everything (an OpenSearch or a flusso server)."""
    server = _Server(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- the source connection ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_closed_postgres_port_names_the_address_and_the_url_to_fix(project, command):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/app"
    args = run_args(project, unique_name("s")) if command == "run" else ["check"]
    stderr = failed_cleanly(flusso(*args, cwd=project, env={"DATABASE_URL": url}))
    error, hint = error_lines(stderr)[:2]
    assert error.startswith("Error: cannot connect to Postgres at 127.0.0.1:")
    assert "Connection refused" in error
    assert hint.startswith("hint: is Postgres running")
    assert "DATABASE_URL" in hint


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_wrong_database_name_says_create_it_or_fix_the_name(project, postgres_server, command):
    url = postgres_server.url_for("no_such_db")
    args = run_args(project, unique_name("s")) if command == "run" else ["check"]
    stderr = failed_cleanly(flusso(*args, cwd=project, env={"DATABASE_URL": url}))
    assert 'database "no_such_db" does not exist' in stderr
    assert "hint: create the database" in stderr
    assert "DATABASE_URL" in stderr


def test_an_unknown_role_says_create_it_or_fix_the_user(project, books_db):
    url = books_db.replace("postgres@", "nobody_here@")
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s")), cwd=project,
                                   env={"DATABASE_URL": url}))
    assert 'role "nobody_here" does not exist' in stderr
    assert "hint: create the role, or fix the user name" in stderr


def test_a_wrong_password_says_check_the_user_and_password(project, replica_server):
    url = f"postgresql://{PASSWORD_ROLE}:wrong@127.0.0.1:{replica_server.port}/postgres"
    stderr = failed_cleanly(flusso("check", cwd=project, env={"DATABASE_URL": url}))
    assert "password authentication failed" in stderr
    assert "hint: check the user and password" in stderr
    assert ":wrong@" not in stderr  # the password is never echoed


def test_a_malformed_database_url_shows_the_expected_shape(project):
    stderr = failed_cleanly(flusso("check", cwd=project, env={"DATABASE_URL": "postgres:/x"}))
    assert error_lines(stderr) == [
        "Error: invalid connection URL from DATABASE_URL: `postgres:/x` does not match "
        "^(postgresql|postgres)://\\S+$",
        "hint: write it as postgresql://user:password@host:5432/database",
    ]


@pytest.mark.parametrize("command", ["run", "check"])
def test_no_database_url_and_no_connection_url_says_where_to_set_one(project, command):
    args = run_args(project, unique_name("s")) if command == "run" else ["check"]
    stderr = failed_cleanly(flusso(*args, cwd=project))
    assert error_lines(stderr) == [
        "Error: source has no connection_url and DATABASE_URL is not set",
        "hint: set DATABASE_URL, or `connection_url` under [source] in flusso.toml",
    ]


# -- the source's replication setup ---------------------------------------------------------------


def test_run_on_a_replica_wal_level_says_how_to_enable_logical_replication(
    project, replica_server
):
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s")), cwd=project,
                                   env={"DATABASE_URL": replica_server.url}))
    # Refused before any slot is made, with what to run.
    assert error_lines(stderr)[0] == (
        "Error: the source database is not ready: wal_level: the server runs with wal_level = "
        "replica; logical replication needs wal_level = logical"
    )
    assert "hint: run ALTER SYSTEM SET wal_level = logical;" in stderr
    assert "restart Postgres" in stderr


def test_run_as_a_role_without_replication_says_to_grant_it(project, books_db):
    role = unique_name("norepl")
    with psycopg.connect(books_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON books TO {role}")
    url = books_db.replace("postgres@", f"{role}@")
    slot = unique_name("s")
    stderr = failed_cleanly(flusso(*run_args(project, slot), cwd=project,
                                   env={"DATABASE_URL": url}))
    assert (f"Error: the source database is not ready: role: role {role} may not stream "
            "changes (no REPLICATION right)") in stderr
    assert f'hint: run ALTER ROLE "{role}" REPLICATION;' in stderr
    assert slot not in slots(books_db)


# -- schemas that do not match the database --------------------------------------------------------


def test_run_with_a_schema_naming_a_missing_column_fails_before_making_a_slot(project, books_db):
    (project / "books.schema.yml").write_text(SCHEMA.replace("text: title", "text: titel"))
    slot = unique_name("s")
    result = flusso(*run_args(project, slot), cwd=project, env={"DATABASE_URL": books_db})
    stderr = failed_cleanly(result)
    assert error_lines(stderr) == [
        "Error: books.schema.yml (index books): titel: references unknown column "
        "`public.books.titel`",
        "hint: fix the schema, or create it in the database; `flusso check` lists every "
        "disagreement",
    ]
    assert result.stdout == ""  # nothing was built
    assert slots(books_db) == []  # and nothing was created in the database


def test_run_with_a_schema_naming_a_missing_table_points_at_the_file_and_check(project, books_db):
    (project / "books.schema.yml").write_text(SCHEMA.replace("table: books", "table: bookz"))
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s")), cwd=project,
                                   env={"DATABASE_URL": books_db}))
    assert error_lines(stderr)[0] == (
        "Error: books.schema.yml (index books): table: references unknown table "
        "`public.bookz` (no such table in the database)"
    )
    assert "`flusso check` lists every disagreement" in stderr
    assert slots(books_db) == []


# -- the OpenSearch sink -------------------------------------------------------------------------


def opensearch_project(project: Path, url: str) -> Path:
    (project / "flusso.toml").write_text(OPENSEARCH_CONFIG.format(url=url))
    return project


def test_an_unreachable_opensearch_names_the_sink_and_its_url(project, books_db):
    url = f"http://127.0.0.1:{free_port()}"
    opensearch_project(project, url)
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s")), cwd=project,
                                   env={"DATABASE_URL": books_db}))
    error, hint = error_lines(stderr)[:2]
    assert error.startswith("Error: write failed: ")
    assert error.endswith(f"(sink primary at {url})")
    assert hint == (
        "hint: check that OpenSearch is running and reachable at the url under "
        "[sinks.primary]; nothing was acknowledged, so a restart resumes safely"
    )


def test_an_opensearch_url_with_a_wrong_scheme_is_a_config_error(project, books_db):
    opensearch_project(project, "ftp://127.0.0.1:9200")
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s")), cwd=project,
                                   env={"DATABASE_URL": books_db}))
    assert error_lines(stderr) == [
        "Error: [sinks.primary] url: invalid HTTP URL `ftp://127.0.0.1:9200`: "
        "it must match ^https?://\\S+$",
        "hint: write it as https://host:9200",
    ]


def test_an_opensearch_answering_401_says_to_set_the_sinks_credentials(
    project, books_db, answers_401
):
    opensearch_project(project, f"http://{answers_401}")
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s")), cwd=project,
                                   env={"DATABASE_URL": books_db}))
    error, hint = error_lines(stderr)[:2]
    assert "HTTP 401 Unauthorized" in error
    assert error.endswith(f"(sink primary at http://{answers_401})")
    assert hint.startswith(
        "hint: OpenSearch refused the credentials: set username and password under "
        "[sinks.primary]"
    )


def test_https_to_a_plain_http_opensearch_says_to_use_http(project, books_db, answers_401):
    opensearch_project(project, f"https://{answers_401}")
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s")), cwd=project,
                                   env={"DATABASE_URL": books_db}))
    assert "hint: the TLS handshake failed: if the cluster serves plain HTTP, write its url " \
        "under [sinks.primary] with http:// instead of https://" in stderr


# -- one slot, one consumer -----------------------------------------------------------------------


def test_a_second_run_on_a_slot_in_use_is_refused_before_it_writes_anything(project, books_db):
    slot = unique_name("s")
    env = {**os.environ, "DATABASE_URL": books_db, "NO_COLOR": "1", "FLUSSO_LOG": "warn"}
    first = subprocess.Popen(
        [sys.executable, "-m", "flusso", *run_args(project, slot)],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _slot_active(books_db, slot):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run never started streaming"
            time.sleep(0.2)
        other = project / "other"
        other.mkdir()
        second = flusso(*run_args(other, slot), cwd=project, env={"DATABASE_URL": books_db})
        stderr = failed_cleanly(second)
        assert f"replication slot '{slot}' is active for PID" in stderr
        assert "hint: a slot serves one consumer at a time: stop the other `flusso run`, " \
            "or give this deployment its own --slot" in stderr
        assert second.stdout == ""  # no second backfill
        assert first.poll() is None  # the first run is untouched
    finally:
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0
    assert len(out.splitlines()) == 2  # the first run's backfill, whole
    assert slot in slots(books_db)


def _slot_active(url: str, slot: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
    return bool(row and row[0])


# -- files: journal, lock, config, schemas ----------------------------------------------------------


def test_a_journal_path_under_a_regular_file_names_the_path_and_the_option(project, books_db):
    (project / "file.txt").write_text("not a directory\n")
    journal = project / "file.txt" / "journal.sqlite3"
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s"), "--journal", str(journal)),
                                   cwd=project, env={"DATABASE_URL": books_db}))
    assert error_lines(stderr) == [
        f"Error: cannot open lifecycle journal {journal}: unable to open database file",
        "hint: point --journal / FLUSSO_JOURNAL at a writable file in an existing directory",
    ]
    assert "sqlalche.me" not in stderr


def test_an_unwritable_lock_path_for_run_names_the_path_and_the_option(project, books_db):
    (project / "file.txt").write_text("not a directory\n")
    lock = project / "file.txt" / "flusso.lock"
    stderr = failed_cleanly(flusso(
        *run_args(project, unique_name("s"), "-c", "flusso.toml", "--lock", str(lock)),
        cwd=project, env={"DATABASE_URL": books_db},
    ))
    assert error_lines(stderr) == [
        f"Error: writing compiled lock to {lock}: Not a directory",
        "hint: write it somewhere writable: `flusso build --out PATH`, or "
        "`flusso run --lock PATH` (FLUSSO_LOCK)",
    ]


def test_a_corrupt_lock_under_locked_is_refused_and_left_as_it_was(project, books_db):
    lock = project / "flusso.lock"
    lock.write_text('{"format_version": 1, "config": ')
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s"), "--locked"),
                                   cwd=project, env={"DATABASE_URL": books_db}))
    error, hint = error_lines(stderr)
    assert error.startswith(f"Error: cannot read compiled lock {lock.name}: not valid JSON")
    assert hint == "hint: rebuild it with `flusso build` (or run without --locked to recompile)"
    assert lock.read_text() == '{"format_version": 1, "config": '


def test_a_lock_of_a_newer_format_says_to_rebuild_it(project, books_db):
    assert flusso("build", cwd=project).returncode == 0
    lock = project / "flusso.lock"
    document = json.loads(lock.read_text())
    document["format_version"] = 2
    lock.write_text(json.dumps(document))
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s"), "--locked"),
                                   cwd=project, env={"DATABASE_URL": books_db}))
    assert error_lines(stderr) == [
        "Error: compiled config format version 2 is not supported by this build (expected 1); "
        "recompile with a matching flusso",
        "hint: run `flusso build` to rewrite flusso.lock",
    ]


def test_a_toml_syntax_error_shows_the_position_and_keeps_the_old_lock(project):
    assert flusso("build", cwd=project).returncode == 0
    before = (project / "flusso.lock").read_text()
    (project / "flusso.toml").write_text('[source\ntype = "postgres"\n')
    for command in (["build"], ["check", "--offline"], run_args(project, unique_name("s"))):
        stderr = failed_cleanly(flusso(*command, cwd=project))
        assert stderr.startswith(
            "Error: flusso.toml: TOML syntax error: expected ']' at the end of a table "
            "declaration\n --> line 1, column 8\n"
        )
    assert (project / "flusso.lock").read_text() == before


def test_a_yaml_syntax_error_names_the_schema_file_index_and_position(project):
    (project / "books.schema.yml").write_text(
        "version: 1\ntable: books\nprimary_key: id\nfields:\n  - integer: id\n   required: true\n"
    )
    stderr = failed_cleanly(flusso("check", "--offline", cwd=project))
    assert stderr.startswith("Error: books.schema.yml (index books): invalid YAML: ")
    assert " --> line 6, column 4\n" in stderr
    assert "hint: fix the YAML syntax at the marked position" in stderr


def test_a_schema_path_that_is_a_directory_says_to_name_the_file(project):
    (project / "books.schema.yml").unlink()
    (project / "books.schema.yml").mkdir()
    stderr = failed_cleanly(flusso("check", "--offline", cwd=project))
    assert error_lines(stderr) == [
        "Error: flusso.toml: [[index]] #1 `books`: cannot read schema file books.schema.yml: "
        "Is a directory",
        "hint: `schema` names a directory; point it at the file itself",
    ]


def test_a_schema_file_that_is_not_utf8_says_to_save_it_as_utf8(project):
    (project / "books.schema.yml").write_bytes(b"version: 1\ntable: b\xe9ooks\n")
    stderr = failed_cleanly(flusso("build", cwd=project))
    assert error_lines(stderr) == [
        "Error: flusso.toml: [[index]] #1 `books`: cannot read schema file books.schema.yml: "
        "not UTF-8 text (invalid continuation byte at byte 19)",
        "hint: save the file as UTF-8 text",
    ]
    assert not (project / "flusso.lock").exists()


def test_an_empty_config_says_it_needs_a_source_table(project):
    (project / "flusso.toml").write_text("")
    stderr = failed_cleanly(flusso("check", "--offline", cwd=project))
    error, hint = error_lines(stderr)
    assert error == "Error: flusso.toml: missing key `source`"
    assert hint.startswith('hint: every config needs a [source] table: add `[source]` and '
                           '`type = "postgres"`')


def test_a_config_path_that_is_a_directory_says_to_name_the_file(project):
    (project / "conf.d").mkdir()
    stderr = failed_cleanly(flusso("build", "-c", "conf.d", cwd=project))
    assert error_lines(stderr) == [
        "Error: cannot read config file conf.d: Is a directory",
        "hint: --config / FLUSSO_CONFIG names a directory; point it at the file itself",
    ]


# -- usage errors (exit 2) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["check", "--format", "yaml"], "'yaml' is not one of 'human', 'json'"),
        (["run", "--lag-poll-secs", "0"], "0 is not in the range x>=1"),
        (["run", "--public-address", "localhost:9464"],
         "write an IP literal with a port, e.g. 127.0.0.1:9464 or [::1]:9465"),
        (["schema", "yaml"], "'yaml' is not one of 'config', 'index'"),
        (["indexes", "--server", "ftp://host:9465"], "is not an http:// or https:// URL"),
        (["indexes", "--server", "http://[::1"], "is not a valid address"),
    ],
)
def test_a_bad_flag_value_is_a_usage_error_that_names_the_flag(project, args, expected):
    stderr = failed_cleanly(flusso(*args, cwd=project), code=2)
    assert expected in stderr
    assert f"'{args[1]}'" in stderr or args[1] in stderr


# -- the admin client ------------------------------------------------------------------------------


def test_indexes_with_the_server_down_says_where_flusso_run_should_listen(project):
    server = f"127.0.0.1:{free_port()}"
    stderr = failed_cleanly(flusso("indexes", "--server", server, cwd=project))
    assert stderr.startswith("Error: requesting /indexes\n")
    assert f"hint: is `flusso run` running with its private surface at http://{server}? " \
        "Point --server / FLUSSO_SERVER at its --private-address" in stderr
    assert "Connection refused" in stderr


def test_reindex_with_a_wrong_password_says_which_flags_to_check(project, answers_401):
    stderr = failed_cleanly(flusso("reindex", "books", "--server", answers_401,
                                   "--admin-password", "nope", cwd=project))
    error, hint = error_lines(stderr)
    assert error.startswith("Error: server returned 401 Unauthorized: ")
    assert hint.startswith("hint: check --admin-user and --admin-password")


def test_indexes_over_https_to_a_plain_http_server_says_to_use_http(project, answers_401):
    stderr = failed_cleanly(flusso("indexes", "--server", f"https://{answers_401}",
                                   "--timeout", "5", cwd=project))
    assert stderr.startswith("Error: requesting /indexes\n")
    assert "hint: the TLS handshake with" in stderr
    assert "try --server http://" in stderr


# -- names -----------------------------------------------------------------------------------------


def test_an_invalid_slot_name_is_refused_before_a_publication_is_made(project, books_db):
    stderr = failed_cleanly(flusso(
        "run", "--public-address", "127.0.0.1:0", "--private-address", "127.0.0.1:0",
        "--slot", "Bad-Slot", "--publication", "bad_slot_pub",
        "--journal", str(project / "journal.sqlite3"),
        cwd=project, env={"DATABASE_URL": books_db},
    ))
    assert "invalid replication slot name 'Bad-Slot'" in stderr
    assert "hint: slot names use lowercase letters, digits and underscores" in stderr
    with psycopg.connect(books_db, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)


def test_an_invalid_index_prefix_says_which_characters_are_allowed(project, books_db):
    stderr = failed_cleanly(flusso(*run_args(project, unique_name("s"), "--index-prefix", "Bad!"),
                                   cwd=project, env={"DATABASE_URL": books_db}))
    error, hint = error_lines(stderr)
    assert error.startswith('Error: invalid index prefix: index prefix "Bad!" contains uppercase')
    assert "--index-prefix, FLUSSO_INDEX_PREFIX or `prefix` in flusso.toml" in hint
