"""A reverse proxy that forwards every request to a target and records each `_bulk` body.

    python -m bench.recording_proxy http://127.0.0.1:9200 PORT LOG

One JSON object per line in LOG: `t` (epoch seconds), `query` (path and query string),
`body` (the request's NDJSON), `status`. Used by `bench/visibility.py` to see what a
tool actually sent when a document in the cluster is stale.
"""

from __future__ import annotations

import json
import sys
import time

from aiohttp import ClientSession, web


def build_app(target: str, log_path: str) -> web.Application:
    log = open(log_path, "a")  # noqa: SIM115 - open for the app's lifetime
    app = web.Application(client_max_size=1 << 30)

    async def start(app: web.Application) -> None:
        app["session"] = ClientSession()

    async def stop(app: web.Application) -> None:
        await app["session"].close()
        log.close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "authorization")}
        async with app["session"].request(request.method, target + request.path_qs,
                                          data=body or None, headers=headers) as reply:
            data = await reply.read()
            if "_bulk" in request.path:
                log.write(json.dumps({"t": time.time(), "query": request.path_qs,
                                      "body": body.decode(), "status": reply.status}) + "\n")
                log.flush()
            return web.Response(body=data, status=reply.status, headers={
                "content-type": reply.headers.get("content-type", "application/json")})

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    target, port, log_path = sys.argv[1].rstrip("/"), int(sys.argv[2]), sys.argv[3]
    web.run_app(build_app(target, log_path), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
