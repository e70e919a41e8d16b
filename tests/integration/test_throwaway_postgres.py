import psycopg


def test_a_fresh_database_runs_with_logical_wal(pg_url):
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        conn.execute("CREATE TABLE t (id int primary key)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_the_replication_protocol_is_allowed_on_loopback(pg_url):
    with psycopg.connect(pg_url, replication="database", autocommit=True) as conn:
        row = conn.execute("IDENTIFY_SYSTEM").fetchone()
        assert row is not None and row[0]
