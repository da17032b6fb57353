"""Checks made before a request's body is read: the header count, the API key, and the body's
size and pace.

As plain ASGI, ahead of routing and body parsing: an unauthenticated or oversized request costs
the server its headers only, whatever the route would have parsed (a 192 MB JSON body used to
be read and parsed before the key was checked). Limits on the connection itself (header bytes
and time, connection count) are in `connections.py`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import time

from msinet.server.errors import error_for


def _error(status: int, message: str, headers: list[tuple[bytes, bytes]] = (), path: str = ""):
    body = json.dumps(error_for(path, status, message)).encode()
    start = {"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *headers]}  # fmt: skip
    return start, {"type": "http.response.body", "body": body}


class RequestGuard:
    """431 for more than `max_headers` header fields; 401 without the right X-API-Key
    (compared in constant time) on every route but the public ones; 413 for a body over
    `max_body` bytes (`batch_body` on `:batch` routes, which take several uploads), by
    Content-Length or while it streams; 408 for a body not complete `body_timeout` seconds
    after the headers (a slow sender holds a connection and a route's parser); 503 when the
    bodies of the requests in flight would pass `inflight_bodies` bytes (a request holds its
    Content-Length, or its route's limit when chunked; a :batch, whose parts are spooled to
    disk, at most `batch_held`) until its answer is sent. A request alone always passes: 64
    uploads of 20 MB at once had taken 3 GB."""

    def __init__(self, app, api_key: str | None, public: list[str], max_body: int,
                 batch_body: int, body_timeout: float = 60.0, max_headers: int = 100,
                 inflight_bodies: int | None = None, batch_held: int | None = None,
                 on_refused=None) -> None:  # fmt: skip
        self.app, self.default_body, self.batch_body = app, max_body, batch_body
        self.inflight_bodies, self.batch_held = inflight_bodies, batch_held or batch_body
        self.bodies = 0  # bytes held by the requests in flight
        self.on_refused = on_refused or (lambda reason: None)
        self.key = api_key.encode() if api_key else None
        self.public = tuple(public)
        self.body_timeout, self.max_headers = body_timeout, max_headers

    def authorized(self, scope, given: bytes) -> bool:
        """No key configured, a public route, or the right key (compared in constant time)."""
        if self.key is None or self.is_public(scope["path"]):
            return True
        return hmac.compare_digest(given, self.key)

    async def websocket(self, scope, receive, send) -> None:
        """The same key for WebSockets, refused before the handshake: the X-API-Key header, or
        from a browser (which cannot set headers on a WebSocket) the subprotocol
        `msinet.key.<key in unpadded base64url>` beside `msinet.v1`, as the web page sends it;
        a `key` query parameter still works, but query strings reach proxies' logs."""
        from urllib.parse import parse_qs

        headers = dict(scope["headers"])
        query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
        given = (headers.get(b"x-api-key") or key_of(scope.get("subprotocols", []))
                 or query.get("key", [""])[0].encode())  # fmt: skip
        if not self.authorized(scope, given):
            await send({"type": "websocket.close", "code": 1008,
                        "reason": "missing or wrong API key"})  # fmt: skip
            return None
        return await self.app(scope, receive, send)

    def is_public(self, path: str) -> bool:
        return any(path == p or (p != "/" and path.startswith(p.rstrip("/") + "/"))
                   for p in self.public)  # fmt: skip

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            return await self.websocket(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope["headers"]) > self.max_headers:
            for message in _error(431, f"{len(scope['headers'])} request header fields, over "
                                       f"the limit of {self.max_headers}",
                                  [(b"connection", b"close")], scope["path"]):  # fmt: skip
                await send(message)
            return None
        headers = dict(scope["headers"])
        limit = self.batch_body if scope["path"].endswith(":batch") else self.default_body
        if not self.authorized(scope, headers.get(b"x-api-key", b"")):
            key_header = [(b"www-authenticate", b"X-API-Key")]
            for message in _error(401, "missing or wrong X-API-Key", key_header, scope["path"]):
                await send(message)
            return None
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            for message in _error(413, f"request body of {int(declared)} bytes is over the "
                                       f"{limit}-byte limit", path=scope["path"]):  # fmt: skip
                await send(message)
            return None
        held = self.held(scope["path"], headers, limit)
        if self.inflight_bodies and self.bodies and self.bodies + held > self.inflight_bodies:
            self.on_refused("uploads")
            message = (f"server busy: {self.bodies} bytes of uploads in flight, {held} more "
                       f"would pass the {self.inflight_bodies}-byte limit")  # fmt: skip
            # the body is read and dropped first: closing on unread data resets the
            # connection, and the client would see a reset instead of the 503
            drained = await self.drain(receive, limit)
            extra = [(b"retry-after", b"1")] + ([] if drained else [(b"connection", b"close")])
            for m in _error(503, message, extra, scope["path"]):
                await send(m)
            return None
        self.bodies += held
        try:
            await self.body_limited(scope, receive, send, limit)
        finally:
            self.bodies -= held
        return None

    async def drain(self, receive, limit: int) -> bool:
        """Read and drop a body (none of it kept): True when it ended within the body timeout
        and the route's limit, so that the connection can stay open."""
        deadline, seen = time.monotonic() + self.body_timeout, 0
        while True:
            try:
                m = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
            if m["type"] != "http.request":
                return False
            seen += len(m.get("body", b""))
            if seen > limit:
                return False
            if not m.get("more_body", False):
                return True

    def held(self, path: str, headers: dict[bytes, bytes], limit: int) -> int:
        """Bytes a request's body may hold in memory: its length, or its limit if chunked."""
        declared = headers.get(b"content-length", b"")
        if declared.isdigit():
            size = int(declared)
        else:
            size = limit if b"chunked" in headers.get(b"transfer-encoding", b"").lower() else 0
        return min(size, self.batch_held) if path.endswith(":batch") else size

    async def body_limited(self, scope, receive, send, limit: int) -> None:
        seen, complete, refusal = 0, False, None
        deadline = time.monotonic() + self.body_timeout
        end = {"type": "http.request", "body": b"", "more_body": False}

        async def limited_receive():
            nonlocal seen, complete, refusal
            if complete:  # after the body, only a disconnect can come: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:  # stop reading: the app sees the body end here
                refusal = _error(408, f"request body not complete within {self.body_timeout:g} s",
                                 [(b"connection", b"close")], scope["path"])  # fmt: skip
                return end
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:  # stop reading: the app sees the body end here
                    refusal = _error(413, f"request body is over the {limit}-byte limit",
                                     path=scope["path"])  # fmt: skip
                    return end
            return message

        passing = False  # the app's answer began before the body was refused: let it finish

        async def guarded_send(message) -> None:
            nonlocal passing
            if refusal is None or passing:
                passing = passing or message["type"] == "http.response.start"
                return await send(message)
            # whatever the app made of the cut body, the answer is the refusal
            if message["type"] == "http.response.start":
                await send(refusal[0])
            elif not message.get("more_body", False):
                await send(refusal[1])
            return None

        await self.app(scope, limited_receive, guarded_send)


KEY_PROTOCOL = "msinet.key."  # + the key in unpadded base64url (a subprotocol is a token)
STREAM_PROTOCOL = "msinet.v1"  # what the server accepts with, never the key's subprotocol


def key_of(subprotocols: list[str]) -> bytes:
    """The key carried by a `msinet.key.` subprotocol, or b"" (none, or not base64url)."""
    for p in subprotocols:
        if p.startswith(KEY_PROTOCOL):
            text = p[len(KEY_PROTOCOL) :]
            try:
                return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                return b""
    return b""
