"""HTTP plumbing shared by the peer's routes: OpenAI's error envelope and CORS."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from rtedge.peer import wire

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS_PREFIX: Final = "/v1/"
EXPOSED_HEADERS: Final = "Location, X-Session-Id, Retry-After, X-Request-Id"

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raised by handlers; becomes ``{"error": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None,
        param: str | None = None,
        etype: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = wire.error_body(message, code, param, etype)
        self.headers = headers or {}


def error_response(err: ApiError) -> web.Response:
    return web.json_response({"error": err.body}, status=err.status, headers=err.headers)


_STATUS_CODES: Final = {
    404: ("Not found.", "not_found"),
    405: ("Method not allowed.", "method_not_allowed"),
    413: ("Request body too large.", "request_too_large"),
}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves in OpenAI's envelope; nothing a client sends can crash the server."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message, code = _STATUS_CODES.get(exc.status, (exc.reason, None))
        return error_response(ApiError(exc.status, message, code))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            ApiError(
                500,
                "The server had an error while processing your request. Sorry about that!",
                None,
                etype="server_error",
            )
        )


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the public API only (a browser page from another origin calls it, as the page
    in OpenAI's WebRTC guide does). The loopback admin routes get no CORS headers, so a web page
    cannot drive fault injection from a browser."""
    if not request.path.startswith(CORS_PREFIX):
        return await handler(request)
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS":
        headers = {
            "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", "Authorization, Content-Type"
            ),
            "Access-Control-Max-Age": "600",
        }
        response: web.StreamResponse = web.Response(status=204, headers=headers)
    else:
        response = await handler(request)
    response.headers["Access-Control-Allow-Origin"] = origin or "*"
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if origin:
        response.headers["Vary"] = "Origin"
    return response


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


#: Deepest JSON a request may carry: sessions nest 4-5 levels; 2000 would crash a recursive
#: parser or validator (RecursionError -> 500) instead of being answered 400.
MAX_JSON_DEPTH: Final = 32


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``value`` nests at most ``limit`` containers deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def parse_json(text: str | bytes, param: str | None = None) -> Any:
    """Parse request JSON; 400 ``invalid_json`` when it is not JSON or nests too deep."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
        ok = False
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ApiError(
            400, f"We could not parse the JSON body of your request: {exc}", "invalid_json", param
        ) from None
    else:
        ok = json_depth_ok(value)
    if not ok:
        raise ApiError(
            400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels.", "invalid_json", param
        )
    return value


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (size-limited by the app); 400 ``invalid_json`` if it is not."""
    body = await request.read()
    return parse_json(body) if body.strip() else None
