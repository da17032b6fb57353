"""WebSocket /v1/stream: live frames (a camera) in, saliency maps out, through the same
admission, batcher and pipeline as /v1/saliency.

Each binary message is one encoded image (JPEG from the page's camera); each answer is the
map as PNG at the frame's size, or a JSON error body for that frame (the stream goes on). The
client sends the next frame when an answer arrives, so a slow model lowers the frame rate
instead of growing a queue."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from msinet.server.errors import error_body
from msinet.server.guard import STREAM_PROTOCOL
from msinet.server.routes import service_of
from msinet.server.service import Options, ServiceError

router = APIRouter(prefix="/v1", tags=["stream"])


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    service = service_of(ws)
    settings = ws.app.state.settings
    state = ws.app.state
    if state.streams >= settings.stream_cap:  # refused before the handshake
        await ws.close(code=1013, reason=f"at the limit of {settings.stream_cap} streams")
        return
    state.streams += 1
    try:
        # a browser that sent its key as a subprotocol needs one of its offers back
        offered = ws.scope.get("subprotocols", [])
        await ws.accept(subprotocol=STREAM_PROTOCOL if STREAM_PROTOCOL in offered else None)
        await frames(ws, service, settings.max_upload_bytes, settings.stream_idle_s)
    except WebSocketDisconnect:
        return
    finally:
        state.streams -= 1


async def frames(ws: WebSocket, service, limit: int, idle_s: float) -> None:
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), idle_s)
        except TimeoutError:
            await ws.close(code=1000, reason=f"no frame for {idle_s:g} s")
            return
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        try:
            if data is None:  # a text frame: answered, and the stream goes on
                raise ServiceError(415, "send each frame as a binary message holding an "
                                   "encoded image, not as text")  # fmt: skip
            if len(data) > limit:
                raise ServiceError(413, f"frame of {len(data)} bytes is over the "
                                   f"{limit}-byte limit")  # fmt: skip
            with service.admit(1) as ticket:
                result = await service.saliency(data, Options(format="png"), ticket)
        except ServiceError as e:
            await ws.send_json(error_body(e.status, e.message))
            continue
        await ws.send_bytes(result.body)
