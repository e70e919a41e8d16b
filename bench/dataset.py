"""The shared benchmark dataset: users with orders with items, and the fan-out case.

Everything is generated inside Postgres with `generate_series` and integer
arithmetic, so a given scale always produces byte-identical rows. Scale 1 is
20,000 users, 100,000 orders (5 per user) and 300,000 order items (3 per order);
the count of each table is multiplied by `scale` (fractions allowed, for smoke runs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

USERS_PER_SCALE = 20_000
ORDERS_PER_USER = 5
ITEMS_PER_ORDER = 3
FANOUT_POSTS = 10_000

SCHEMA_SQL = """
CREATE TABLE users (
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    tier        text NOT NULL,
    login_count integer NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE TABLE orders (
    id        bigint PRIMARY KEY,
    user_id   bigint NOT NULL REFERENCES users (id),
    status    text NOT NULL,
    total     numeric(12, 2) NOT NULL,
    placed_at timestamptz NOT NULL
);
CREATE INDEX orders_user_id ON orders (user_id);
CREATE TABLE order_items (
    id         bigint PRIMARY KEY,
    order_id   bigint NOT NULL REFERENCES orders (id),
    sku        text NOT NULL,
    quantity   integer NOT NULL,
    unit_price numeric(10, 2) NOT NULL
);
CREATE INDEX order_items_order_id ON order_items (order_id);
"""

# One statement per table; %(n)s is the number of users. Values depend only on `g`.
LOAD_SQL = (
    """
    INSERT INTO users
    SELECT g,
           'user' || g || '@example.com',
           'User Number ' || g || ' ' || repeat(chr((97 + g %% 26)::int), 8),
           (ARRAY['free', 'pro', 'enterprise'])[1 + g %% 3],
           ((g * 7) %% 500)::int,
           timestamptz '2023-01-01 00:00:00+00' + g * interval '17 minutes'
    FROM generate_series(1::bigint, %(n)s) AS g
    """,
    """
    INSERT INTO orders
    SELECT g,
           1 + (g - 1) / 5,
           (ARRAY['pending', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g %% 5],
           ((g * 37) %% 100000) / 100.0,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '3 minutes'
    FROM generate_series(1::bigint, %(n)s * 5) AS g
    """,
    """
    INSERT INTO order_items
    SELECT g,
           1 + (g - 1) / 3,
           'SKU-' || lpad(((g * 7919) %% 100000)::text, 6, '0'),
           (1 + g %% 7)::int,
           ((g * 53) %% 20000) / 100.0
    FROM generate_series(1::bigint, %(n)s * 15) AS g
    """,
)

FANOUT_SCHEMA_SQL = """
CREATE TABLE authors (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE posts (
    id        bigint PRIMARY KEY,
    author_id bigint NOT NULL REFERENCES authors (id),
    title     text NOT NULL,
    body      text NOT NULL
);
CREATE INDEX posts_author_id ON posts (author_id);
"""


@dataclass(frozen=True)
class DatasetSize:
    users: int
    orders: int
    items: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def users_for(scale: float) -> int:
    return max(1, round(USERS_PER_SCALE * scale))


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def load(url: str, scale: float) -> DatasetSize:
    """Create the tables in the (empty) database at `url` and fill them for `scale`."""
    users = users_for(scale)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        for statement in LOAD_SQL:
            conn.execute(statement, {"n": users})
        # Freeze and hint every page now, so the first leg to read the tables (flusso's)
        # does not pay for setting hint bits that the later legs then get for free.
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")  # and write it all out before any leg starts its clock
    return DatasetSize(users, users * ORDERS_PER_USER, users * ORDERS_PER_USER * ITEMS_PER_ORDER)


def load_fanout(url: str, posts: int = FANOUT_POSTS) -> None:
    """Author 1 writes `posts` posts; authors 2..11 write one each (so rebuilds are selective)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FANOUT_SCHEMA_SQL)
        conn.execute("INSERT INTO authors SELECT g, 'Author ' || g FROM generate_series(1, 11) g")
        conn.execute(
            "INSERT INTO posts SELECT g, 1, 'Post ' || g, repeat('lorem ipsum ', 20) "
            "FROM generate_series(1::bigint, %(n)s) g",
            {"n": posts},
        )
        conn.execute(
            "INSERT INTO posts SELECT %(n)s + g, 1 + g, 'Post by ' || g, 'x' "
            "FROM generate_series(1, 10) g",
            {"n": posts},
        )
        conn.execute("ANALYZE")


# -- flusso's view of the dataset ---------------------------------------------------------

USERS_SCHEMA_YML = """\
version: 1
table: users
primary_key: id
fields:
  - long: id
    required: true
  - keyword: email
    required: true
  - text: fullName
    column: full_name
    required: true
  - keyword: tier
    required: true
  - integer: loginCount
    column: login_count
    required: true
  - timestamp: createdAt
    column: created_at
    required: true
  - has_many: orders
    table: orders
    foreign_key: user_id
    primary_key: id
    order_by:
      - { column: id }
    fields:
      - long: id
        required: true
      - keyword: status
        required: true
      - decimal: total
        required: true
      - timestamp: placedAt
        column: placed_at
        required: true
      - has_many: items
        table: order_items
        foreign_key: order_id
        primary_key: id
        order_by:
          - { column: id }
        fields:
          - long: id
            required: true
          - keyword: sku
            required: true
          - integer: quantity
            required: true
          - decimal: unitPrice
            column: unit_price
            required: true
  - count: orderCount
    table: orders
    foreign_key: user_id
"""

POSTS_SCHEMA_YML = """\
version: 1
table: posts
primary_key: id
fields:
  - long: id
    required: true
  - text: title
    required: true
  - text: body
    required: true
  - belongs_to: author
    table: authors
    column: author_id
    primary_key: id
    fields:
      - text: name
        required: true
"""

FLUSSO_TOML = """\
on_error = "stop"

[source]
type = "postgres"
manage_publication = true

[sinks.primary]
type = "opensearch"
url = {{ env = "BENCH_SINK_URL" }}
number_of_replicas = 0
refresh_interval = "1s"
batch_size = {batch_size}
# osmem-server can take minutes for one bulk request; a 30 s timeout would make flusso
# retry (and osmem index the same documents again) in a loop.
timeout_secs = 600

[[index]]
name = "{index}"
schema = "{schema_file}"
enabled = true
"""


def write_flusso_config(
    directory: Path, *, index: str = "users", schema: str = USERS_SCHEMA_YML,
    batch_size: int = 1000,
) -> Path:
    """A flusso config + schema for one index in `directory`; returns the toml path."""
    directory.mkdir(parents=True, exist_ok=True)
    schema_file = f"{index}.schema.yml"
    (directory / schema_file).write_text(schema)
    config = directory / "flusso.toml"
    config.write_text(
        FLUSSO_TOML.format(index=index, schema_file=schema_file, batch_size=batch_size)
    )
    return config


# -- the limit: every document built by one SQL statement ---------------------------------

# The same document flusso's users index builds (field names and nesting), as JSON text.
LIMIT_SQL = """
SELECT u.id::text,
       json_build_object(
         'id', u.id, 'email', u.email, 'fullName', u.full_name, 'tier', u.tier,
         'loginCount', u.login_count, 'createdAt', u.created_at,
         'orders', coalesce((
            SELECT json_agg(json_build_object(
                     'id', o.id, 'status', o.status, 'total', o.total::text,
                     'placedAt', o.placed_at,
                     'items', coalesce((
                        SELECT json_agg(json_build_object(
                                 'id', i.id, 'sku', i.sku, 'quantity', i.quantity,
                                 'unitPrice', i.unit_price::text) ORDER BY i.id)
                        FROM order_items i WHERE i.order_id = o.id), '[]'::json))
                   ORDER BY o.id)
            FROM orders o WHERE o.user_id = u.id), '[]'::json),
         'orderCount', (SELECT count(*) FROM orders o WHERE o.user_id = u.id)
       )::text
FROM users u
ORDER BY u.id
"""


def sample_document(url: str, user_id: int = 1) -> dict[str, object]:
    """One limit-built document (for eyeballing that both sides build the same shape)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT * FROM ({LIMIT_SQL}) d WHERE d.id = %s", (str(user_id),)
        ).fetchone()
    return json.loads(row[1]) if row else {}
