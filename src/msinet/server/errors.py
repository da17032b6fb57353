"""The one error body of every status the service answers, from a route, a middleware or the
connection itself: `{"error": {"status": 413, "message": "..."}}`."""

from __future__ import annotations

import json
from http import HTTPStatus

# status recorded for a request whose client left before it was read (nginx's convention)
CLIENT_CLOSED = 499


def error_body(status: int, message: str, **extra) -> dict:
    return {"error": {"status": status, "message": message, **extra}}


def error_for(path: str, status: int, message: str, **extra) -> dict:
    """The error body of the route: the Open Inference Protocol's own (`{"error": "<message>"}`,
    what its clients print) under /v2/, msinet's everywhere else."""
    if path.startswith("/v2/"):
        return {"error": message}
    return error_body(status, message, **extra)


def error_bytes(status: int, message: str) -> bytes:
    return json.dumps(error_body(status, message)).encode()


def raw_response(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection, for answers given before
    any request reaches the application (too many connections, headers too large or too slow)."""
    body = error_bytes(status, message)
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json",
             f"content-length: {len(body)}", "connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
