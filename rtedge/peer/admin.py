"""Loopback-only routes for tests and benchmarks, under ``/_rtedge/``:

- ``POST /_rtedge/faults``: a fault object (or a list of them); see ``rtedge.peer.faults``.
  HTTP faults queue for the next requests; call faults act now on every active call, or on
  ``call_id`` only. Answers ``{"pending": [...], "applied": [{"call_id", "fault", "result"}]}``.
- ``GET /_rtedge/faults``: ``{"pending": [...]}``; ``DELETE /_rtedge/faults``: ``{"cleared": n}``.
- ``GET /_rtedge/calls``: recently ended calls then active ones (``rtedge.peer.record``).
- ``GET /_rtedge/stats``: totals, live asyncio tasks and threads.

A request from a non-loopback address gets 403.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rtedge.peer import faults
from rtedge.peer.faults import CallFault, FaultBook, FaultSpecError, HttpFault
from rtedge.peer.httputil import ApiError, Handler, is_loopback, read_json
from rtedge.peer.registry import Registry


def add_routes(app: web.Application, book: FaultBook, registry: Registry) -> None:
    def guard(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not is_loopback(request.remote):
                raise ApiError(403, "The /_rtedge/ routes are loopback-only.", "forbidden")
            return await handler(request)

        return wrapped

    async def post_faults(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        specs = body if isinstance(body, list) else [body]
        try:
            parsed = [faults.parse(spec) for spec in specs]
        except FaultSpecError as exc:
            raise ApiError(400, str(exc), "invalid_fault", exc.param or None) from None
        applied: list[dict[str, Any]] = []
        for fault in parsed:
            if isinstance(fault, HttpFault):
                book.add(fault)
            else:
                applied += _apply(registry, fault)
        return web.json_response({"pending": book.pending(), "applied": applied})

    async def get_faults(request: web.Request) -> web.StreamResponse:
        return web.json_response({"pending": book.pending()})

    async def delete_faults(request: web.Request) -> web.StreamResponse:
        return web.json_response({"cleared": book.clear()})

    async def get_calls(request: web.Request) -> web.StreamResponse:
        return web.json_response(registry.calls_json())

    async def get_stats(request: web.Request) -> web.StreamResponse:
        return web.json_response(registry.stats_json())

    app.router.add_post("/_rtedge/faults", guard(post_faults))
    app.router.add_get("/_rtedge/faults", guard(get_faults))
    app.router.add_delete("/_rtedge/faults", guard(delete_faults))
    app.router.add_get("/_rtedge/calls", guard(get_calls))
    app.router.add_get("/_rtedge/stats", guard(get_stats))


def _apply(registry: Registry, fault: CallFault) -> list[dict[str, Any]]:
    if fault.call_id is not None:
        call = registry.find(fault.call_id)
        if call is None:
            raise ApiError(
                404, f"No active call {fault.call_id!r}.", "call_id_not_found", "call_id"
            )
        targets = [call]
    else:
        targets = list(registry.active.values())
    return [
        {"call_id": call.id, "fault": fault.kind, "result": call.apply_fault(fault)}
        for call in targets
    ]
