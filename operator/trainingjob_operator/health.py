"""Liveness and readiness for the kubelet's probes, served from the operator's event loop.

/healthz answers only if the event loop is responsive and the admission loop is alive, so a
wedged or crashed loop gets the container restarted. /readyz is true once the watches have
filled the indexes; a standby is ready too (it is a warm spare, and a Deployment rollout
must not wait for it to win the lease). Both bodies say why, for `kubectl describe pod`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Check = Callable[[], tuple[bool, str]]


def _handler(check: Check) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        ok, why = check()
        return web.Response(status=200 if ok else 503, text=why + "\n")
    return handle


async def serve(port: int, live: Check, ready: Check, address: str = "0.0.0.0") -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/healthz", _handler(live))
    app.router.add_get("/readyz", _handler(ready))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
