-- The demo store: the tables the examples/ schemas read, and deterministic rows.
-- Sizes scale with the psql-style variable :scale substituted by flusso.embedded.store.

CREATE TABLE categories (
    id int PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL,
    parent_id int
);

CREATE TABLE users (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    full_name text NOT NULL,
    handle text,
    tier text NOT NULL,
    kind text NOT NULL DEFAULT 'customer',
    external_id uuid NOT NULL,
    marketing_opt_in boolean NOT NULL DEFAULT false,
    birth_year smallint,
    login_count int,
    credit numeric(12,2) NOT NULL DEFAULT 0,
    satisfaction real,
    lifetime_value double precision,
    signup_date date NOT NULL,
    last_seen_at timestamptz,
    avatar bytea,
    settings jsonb,
    preferences jsonb,
    last_lat double precision,
    last_lon double precision,
    karma numeric(8,2),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamp,
    deleted_at timestamptz
);

CREATE TABLE profiles (
    id int PRIMARY KEY,
    user_id bigint NOT NULL,
    bio text,
    website text,
    home_point jsonb
);

CREATE TABLE addresses (
    id int PRIMARY KEY,
    user_id bigint NOT NULL,
    label text NOT NULL,
    line1 text NOT NULL,
    city text NOT NULL,
    country text NOT NULL,
    is_default boolean NOT NULL DEFAULT false
);

CREATE TABLE products (
    id int PRIMARY KEY,
    sku text NOT NULL,
    name text NOT NULL,
    title_translations jsonb,
    price numeric(10,2) NOT NULL,
    stock int NOT NULL,
    category_id int,
    archived boolean NOT NULL DEFAULT false
);

CREATE TABLE tags (id int PRIMARY KEY, label text NOT NULL);
CREATE TABLE product_tags (
    product_id int NOT NULL,
    tag_id int NOT NULL,
    PRIMARY KEY (product_id, tag_id)
);

CREATE TABLE reviews (
    id int PRIMARY KEY,
    product_id int NOT NULL,
    rating smallint NOT NULL,
    body text,
    published boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL
);

CREATE TABLE orders (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL,
    status text NOT NULL,
    total numeric(10,2) NOT NULL,
    placed_at timestamptz NOT NULL
);

CREATE TABLE order_items (
    id bigint PRIMARY KEY,
    order_id bigint NOT NULL,
    product_id int NOT NULL,
    sku text NOT NULL,
    quantity int NOT NULL,
    unit_price numeric(10,2) NOT NULL
);

CREATE INDEX ON profiles (user_id);
CREATE INDEX ON addresses (user_id);
CREATE INDEX ON orders (user_id);
CREATE INDEX ON order_items (order_id);
CREATE INDEX ON order_items (product_id);
CREATE INDEX ON products (category_id);
CREATE INDEX ON reviews (product_id);
CREATE INDEX ON product_tags (tag_id);

-- Child rows get deleted and move between parents; the WAL names their old parent only
-- when it carries the whole old row (docs/postgres-setup.md, "Children that move").
ALTER TABLE profiles REPLICA IDENTITY FULL;
ALTER TABLE addresses REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE order_items REPLICA IDENTITY FULL;
ALTER TABLE reviews REPLICA IDENTITY FULL;

INSERT INTO categories VALUES
    (1, 'Kitchen', 'kitchen', NULL), (2, 'Garden', 'garden', NULL), (3, 'Books', 'books', NULL),
    (4, 'Cookware', 'cookware', 1), (5, 'Knives', 'knives', 1), (6, 'Tools', 'garden-tools', 2);

INSERT INTO tags VALUES
    (1, 'bestseller'), (2, 'eco'), (3, 'gift'), (4, 'new'), (5, 'sale'), (6, 'handmade');

INSERT INTO products (id, sku, name, title_translations, price, stock, category_id, archived)
SELECT g,
       format('SKU-%s', lpad(g::text, 5, '0')),
       (ARRAY['Cast iron pan', 'Chef knife', 'Pruning shears', 'Cookbook', 'Watering can',
              'Bread knife', 'Dutch oven', 'Garden gloves'])[1 + g % 8] || ' ' || g,
       jsonb_build_object('en', 'Product ' || g, 'it', 'Prodotto ' || g, 'de', 'Produkt ' || g),
       round((5 + (g * 37) % 200)::numeric + 0.99, 2),
       (g * 13) % 50,
       1 + g % 6,
       g % 23 = 0
FROM generate_series(1, 40 * :scale) AS g;

INSERT INTO product_tags
SELECT p, t FROM generate_series(1, 40 * :scale) AS p, generate_series(1, 6) AS t
WHERE (p + t) % 3 = 0;

INSERT INTO reviews
SELECT g, 1 + g % (40 * :scale), 1 + g % 5,
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'Review number ' || g END,
       g % 7 <> 0,
       timestamptz '2024-01-01 00:00:00+00' + make_interval(hours => g * 5)
FROM generate_series(1, 120 * :scale) AS g;

INSERT INTO users (id, email, full_name, handle, tier, kind, external_id, marketing_opt_in,
                   birth_year, login_count, credit, satisfaction, lifetime_value, signup_date,
                   last_seen_at, avatar, settings, preferences, last_lat, last_lon, karma,
                   created_at, updated_at, deleted_at)
SELECT g,
       format('  User%s@Example.COM ', g),
       (ARRAY['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Edsger Dijkstra', 'Barbara Liskov',
              'Donald Knuth', 'Margaret Hamilton', 'Ken Thompson'])[1 + g % 8] || ' ' || g,
       CASE WHEN g % 3 = 0 THEN NULL ELSE format('user-%s_x', g) END,
       (ARRAY['free', 'pro', 'enterprise'])[1 + g % 3],
       CASE WHEN g % 97 = 0 THEN 'system' ELSE 'customer' END,
       md5('user' || g)::uuid,
       g % 2 = 0,
       CASE WHEN g % 5 = 0 THEN NULL ELSE (1950 + g % 55)::smallint END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE g % 300 END,
       round(((g * 7) % 500)::numeric / 4, 2),
       CASE WHEN g % 6 = 0 THEN NULL ELSE ((g % 50)::real / 10) END,
       (g * 3.25)::double precision,
       date '2020-01-01' + (g % 1500),
       CASE WHEN g % 5 = 0 THEN NULL
            ELSE timestamptz '2025-06-01 08:00:00+00' + make_interval(mins => g * 17) END,
       CASE WHEN g % 10 = 0 THEN decode(md5(g::text), 'hex') ELSE NULL END,
       jsonb_build_object('theme', (ARRAY['dark', 'light'])[1 + g % 2], 'digest', g % 2 = 0),
       jsonb_build_object('language', (ARRAY['en', 'it', 'de'])[1 + g % 3],
                          'currency', (ARRAY['EUR', 'USD'])[1 + g % 2]),
       CASE WHEN g % 4 = 0 THEN NULL ELSE 45 + (g % 100)::double precision / 50 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE 9 + (g % 100)::double precision / 40 END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE round((g % 1000)::numeric / 10, 2) END,
       timestamptz '2020-01-01 00:00:00+00' + make_interval(hours => g * 11),
       CASE WHEN g % 2 = 0 THEN timestamp '2025-01-01 12:00:00' + make_interval(mins => g) END,
       CASE WHEN g % 31 = 0 THEN timestamptz '2025-09-01 00:00:00+00' END
FROM generate_series(1, 100 * :scale) AS g;

INSERT INTO profiles
SELECT g, g,
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'Writes about topic ' || (g % 17) END,
       CASE WHEN g % 2 = 0 THEN format('https://example.com/u/%s', g) END,
       CASE WHEN g % 4 = 0 THEN NULL
            ELSE jsonb_build_object('lat', 40 + (g % 10)::double precision / 7,
                                    'lon', -3 + (g % 10)::double precision / 9) END
FROM generate_series(1, 100 * :scale) AS g
WHERE g % 5 <> 0;

INSERT INTO addresses
SELECT g, 1 + (g - 1) / 2,
       (ARRAY['home', 'work'])[1 + g % 2],
       g || ' Main Street',
       (ARRAY['Milan', 'Berlin', 'Lyon', 'Porto', 'Ghent'])[1 + g % 5],
       (ARRAY['IT', 'DE', 'FR', 'PT', 'BE'])[1 + g % 5],
       g % 2 = 1
FROM generate_series(1, 150 * :scale) AS g;

INSERT INTO orders
SELECT g, 1 + (g * 7) % (100 * :scale),
       (ARRAY['pending', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g % 5],
       0,
       timestamptz '2024-03-01 00:00:00+00' + make_interval(hours => g * 3)
FROM generate_series(1, 300 * :scale) AS g;

INSERT INTO order_items
SELECT g, 1 + (g - 1) / 3, p, format('SKU-%s', lpad(p::text, 5, '0')), 1 + g % 4,
       round((5 + (p * 37) % 200)::numeric + 0.99, 2)
FROM generate_series(1, 900 * :scale) AS g, LATERAL (SELECT 1 + (g * 11) % (40 * :scale) AS p) AS x;

UPDATE orders o SET total = s.total
FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM order_items GROUP BY order_id) AS s
WHERE s.order_id = o.id;
