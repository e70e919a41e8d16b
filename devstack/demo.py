"""`make demo`: the example store synced into an embedded OpenSearch, in one command.

Starts a throwaway Postgres loaded with the demo store, an embedded
OpenSearch-compatible server (osmem-server), and `flusso run` on
`examples/flusso.toml`; prints where to look; keeps a light trickle of
writes going so changes can be watched; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg

from devstack.opensearch import EmbeddedOpenSearch
from devstack.postgres import ThrowawayPostgres, free_port
from devstack.store import load_store

ROOT = Path(__file__).resolve().parents[1]


def _say(text: str) -> None:
    sys.stderr.write(f"[demo] {text}\n")
    sys.stderr.flush()


def _trickle(url: str, stop: threading.Event, interval: float) -> None:
    """A few writes now and then: a login, a new order, a renamed product."""
    rng = random.Random(7)
    with psycopg.connect(url, autocommit=True) as conn:
        next_order = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM orders").fetchone()[0]
        next_item = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM order_items").fetchone()[0]
        while not stop.wait(interval):
            user = rng.randint(1, 100)
            product = rng.randint(1, 40)
            with conn.transaction():
                conn.execute(
                    "UPDATE users SET login_count = coalesce(login_count, 0) + 1, "
                    "last_seen_at = now() WHERE id = %s", (user,),
                )
                conn.execute(
                    "INSERT INTO orders VALUES (%s, %s, 'paid', 0, now())", (next_order, user)
                )
                conn.execute(
                    "INSERT INTO order_items SELECT %s, %s, id, sku, 1, price FROM products "
                    "WHERE id = %s", (next_item, next_order, product),
                )
                conn.execute(
                    "UPDATE orders SET total = (SELECT sum(quantity * unit_price) "
                    "FROM order_items WHERE order_id = %s) WHERE id = %s",
                    (next_order, next_order),
                )
            next_order += 1
            next_item += 1


def _stop_flusso(flusso: subprocess.Popen[bytes], *, already_signalled: bool) -> None:
    """Let flusso drain; Ctrl-C in a terminal already reached it (same process group),
    and a second signal would make it exit without committing its open batch."""
    if already_signalled:
        try:
            flusso.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
    flusso.send_signal(signal.SIGTERM)
    try:
        flusso.wait(timeout=30)
    except subprocess.TimeoutExpired:
        flusso.kill()
        flusso.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__)
    parser.add_argument("--scale", type=int, default=1, help="demo data size (1 = 100 users)")
    parser.add_argument("--trickle", type=float, default=3.0,
                        help="seconds between demo writes; 0 turns them off")
    parser.add_argument("--public-port", type=int, default=None)
    parser.add_argument("--private-port", type=int, default=None)
    args = parser.parse_args(argv)

    workdir = ROOT / ".demo"
    workdir.mkdir(exist_ok=True)
    config = ROOT / "examples" / "flusso.toml"
    stop = threading.Event()
    # As a default server: commits reach logical decoding at once, not at the next
    # WAL-writer wake-up (synchronous_commit=off adds up to 200 ms of latency).
    postgres = ThrowawayPostgres(settings={"synchronous_commit": "on"})
    opensearch = EmbeddedOpenSearch()
    flusso: subprocess.Popen[bytes] | None = None
    interrupted_by = {"signal": signal.SIGINT}

    def on_sigterm(*_: object) -> None:
        interrupted_by["signal"] = signal.SIGTERM
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        _say("starting a throwaway Postgres …")
        postgres.start()
        load_store(postgres.url, args.scale)
        _say(f"Postgres ready at {postgres.url} with the demo store loaded")
        _say("starting the embedded OpenSearch (osmem-server) …")
        opensearch.start()
        _say(f"OpenSearch ready at {opensearch.url}")
        public = args.public_port or free_port()
        private = args.private_port or free_port()
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "DEMO_OPENSEARCH_URL": opensearch.url,
            "FLUSSO_PUBLIC_ADDRESS": f"127.0.0.1:{public}",
            "FLUSSO_PRIVATE_ADDRESS": f"127.0.0.1:{private}",
            "FLUSSO_JOURNAL": str(workdir / "flusso-journal.sqlite3"),
            "FLUSSO_LOCK": str(workdir / "flusso.lock"),
        }
        flusso = subprocess.Popen(
            [sys.executable, "-m", "flusso", "run", "--config", str(config)],
            env=env, cwd=workdir,
        )
        _say("flusso is seeding the indexes; the embedded server indexes slowly, give it a minute")
        _say(f"status:  curl -s http://127.0.0.1:{public}/status")
        _say(f"search:  curl -s '{opensearch.url}/users/_search?q=tier:pro&size=2'")
        _say(f"         curl -s '{opensearch.url}/products/_search?q=name:knife&size=2'")
        _say(f"indexes: flusso indexes --server 127.0.0.1:{private}")
        _say(f"write:   psql '{postgres.url}' -c \"UPDATE users SET full_name = 'Ada L.' WHERE id = 1\"")
        _say("Ctrl-C stops everything")
        if args.trickle > 0:
            threading.Thread(
                target=_trickle, args=(postgres.url, stop, args.trickle), daemon=True
            ).start()
        return flusso.wait()
    except KeyboardInterrupt:
        _say("stopping …")
        return 0
    finally:
        stop.set()
        if flusso is not None and flusso.poll() is None:
            _stop_flusso(flusso, already_signalled=interrupted_by["signal"] == signal.SIGINT)
        opensearch.stop()
        postgres.stop()
        _say("stopped; nothing is left running")


if __name__ == "__main__":
    raise SystemExit(main())
