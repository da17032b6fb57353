"""One router per route group."""

from __future__ import annotations

from fastapi import Request, WebSocket

from msinet.server.service import SaliencyService, ServiceError
from msinet.server.settings import Settings


def service_of(request: Request | WebSocket) -> SaliencyService:
    return request.app.state.service


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ServiceError(413, f"upload of {declared} bytes exceeds the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServiceError(413, f"upload exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
