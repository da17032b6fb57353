"""Checks made before a request's body is read: the API key and the body's size.

As plain ASGI, ahead of routing and body parsing: an unauthenticated or oversized request costs
the server its headers only, whatever the route would have parsed (a 192 MB JSON body used to
be read and parsed before the key was checked)."""

from __future__ import annotations

import hmac
import json


def _error(status: int, message: str, headers: list[tuple[bytes, bytes]] = ()):
    body = json.dumps({"error": {"status": status, "message": message}}).encode()
    start = {"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *headers]}  # fmt: skip
    return start, {"type": "http.response.body", "body": body}


class RequestGuard:
    """401 without the right X-API-Key (compared in constant time) on every route but the
    public ones; 413 for a body over `max_body` bytes (`batch_body` on `:batch` routes, which
    take several uploads), by Content-Length or while it streams."""

    def __init__(self, app, api_key: str | None, public: list[str], max_body: int,
                 batch_body: int) -> None:  # fmt: skip
        self.app, self.default_body, self.batch_body = app, max_body, batch_body
        self.key = api_key.encode() if api_key else None
        self.public = tuple(public)

    def is_public(self, path: str) -> bool:
        return any(path == p or (p != "/" and path.startswith(p.rstrip("/") + "/"))
                   for p in self.public)  # fmt: skip

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        limit = self.batch_body if scope["path"].endswith(":batch") else self.default_body
        if self.key is not None and not self.is_public(scope["path"]):
            given = headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.key):
                for message in _error(401, "missing or wrong X-API-Key",
                                      [(b"www-authenticate", b"X-API-Key")]):  # fmt: skip
                    await send(message)
                return None
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            for message in _error(413, f"request body of {int(declared)} bytes is over the "
                                       f"{limit}-byte limit"):  # fmt: skip
                await send(message)
            return None
        seen, over = 0, False

        async def limited_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # stop reading: the app sees the body end here
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        refusal = _error(413, f"request body is over the {limit}-byte limit")

        passing = False  # the app's answer began before the body ran over: let it finish

        async def guarded_send(message) -> None:
            nonlocal passing
            if not over or passing:
                passing = passing or message["type"] == "http.response.start"
                return await send(message)
            # whatever the app made of the cut body, the answer is the 413
            if message["type"] == "http.response.start":
                await send(refusal[0])
            elif not message.get("more_body", False):
                await send(refusal[1])
            return None

        await self.app(scope, limited_receive, guarded_send)
        return None
