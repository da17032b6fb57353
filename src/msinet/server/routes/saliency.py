"""POST /v1/saliency and /v1/saliency:batch."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from msinet.server.routes import read_limited, service_of, settings_of
from msinet.server.service import Options, ServiceError

# A :batch's uploads are read one by one as their images go through: at most this many of one
# request's uploads are in memory at once (16 x 20 MB were, before any was admitted).
READ_AHEAD = 4

router = APIRouter(prefix="/v1", tags=["saliency"])

IMAGE_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}


def options(
    format: Annotated[
        Literal["png", "jpeg", "npy", "json", "density"],
        Query(
            description="png/jpeg: 8-bit map (or overlay); npy: float32 map; json: downsampled "
            "floats; density: float32 natural-log fixation density (.npy, exp sums to 1)"
        ),
    ] = "png",
    overlay: bool = False,
    colormap: Annotated[str, Query(max_length=40)] = "jet",
    alpha: Annotated[float, Query(ge=0.0, le=1.0)] = 0.6,
    size: Annotated[Literal["original", "model"], Query()] = "original",
    json_max_side: Annotated[int, Query(ge=8, le=1024)] = 64,
) -> Options:
    return Options(format, overlay, colormap, alpha, size, json_max_side)


@contextlib.asynccontextmanager
async def upload_parts(request: Request, field: str, most: int) -> AsyncIterator[list]:
    """The multipart `field`(s) as files (Starlette spools parts over 1 MB to disk): read one
    at a time with `read_part`, so a request never holds all its uploads in memory; the form
    is closed, its files freed, when the block ends."""
    limit = settings_of(request).max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit * most:
        raise ServiceError(413, f"upload of {declared} bytes is over the limit")
    try:
        form = await request.form(max_files=most, max_fields=8, max_part_size=limit)
    except ClientDisconnect:
        raise
    except Exception as e:  # malformed multipart, too many parts
        raise ServiceError(400, f"malformed multipart body: {e}") from e
    try:
        files = [v for v in form.getlist(field) if isinstance(v, UploadFile)]
        if not files:
            raise ServiceError(422, f"multipart field {field!r} with an image file is missing")
        yield files
    finally:
        await form.close()


async def read_part(part: UploadFile, limit: int) -> bytes:
    data = await part.read(limit + 1)
    if len(data) > limit:
        raise ServiceError(413, f"{part.filename}: over the {limit}-byte upload limit")
    return data


async def uploaded_images(request: Request, field: str, most: int) -> list[tuple[str, bytes]]:
    """(file name, image bytes) from multipart `field`(s) or, for one image, the raw body
    (file name "")."""
    limit = settings_of(request).max_upload_bytes
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        async with upload_parts(request, field, most) as parts:
            return [(p.filename or "", await read_part(p, limit)) for p in parts]
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return [("", await read_limited(request, limit))]
    raise ServiceError(415, f"unsupported content type {ctype or '(none)'}: send "
                       "multipart/form-data with an 'image' field, or an image/* body")  # fmt: skip


@router.post(
    "/saliency",
    openapi_extra=IMAGE_BODY,
    response_class=Response,
    responses={
        200: {
            "content": {
                "image/png": {},
                "image/jpeg": {},
                "application/x-npy": {},
                "application/json": {},
            }
        }
    },
)
async def saliency(request: Request, opts: Annotated[Options, Depends(options)]) -> Response:
    """Saliency map of one image: PNG (8-bit map), JPEG, NPY (float32) or JSON (downsampled
    floats), or its calibrated fixation density (`format=density`, NPY log density);
    `overlay=true` blends a heat map over the image instead."""
    service = service_of(request)
    with service.admit(1) as ticket:  # before the upload is read
        ((_, data),) = await uploaded_images(request, "image", 1)
        result = await service.saliency(data, opts, ticket)
    headers = {
        "X-Model-Name": settings_of(request).model_name,
        "X-Model-Version": service.model_version,
        "X-Model-Time-Ms": f"{result.model_ms:.1f}",
        "X-Map-Shape": f"{result.shape[0]}x{result.shape[1]}",
        "Server-Timing": result.timing.header(),
    }
    if isinstance(result.body, dict):
        return JSONResponse(result.body, headers=headers)
    return Response(result.body, media_type=result.media_type, headers=headers)


@router.post("/saliency:batch", openapi_extra={"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {"images": {
        "type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})  # fmt: skip
async def saliency_batch(request: Request, opts: Annotated[Options, Depends(options)]) -> dict:
    """Several images (multipart fields `images`): one result per image, in order. A bad image
    gets its own error entry; the others still succeed. Binary results come base64-encoded."""
    settings = settings_of(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ServiceError(415, f"unsupported content type {ctype or '(none)'}: send "
                           "multipart/form-data with 'images' fields")  # fmt: skip
    service = service_of(request)
    async with upload_parts(request, "images", settings.max_batch_images) as parts:
        names = [p.filename or "" for p in parts]
        gate = asyncio.Semaphore(READ_AHEAD)  # uploads of this request in memory at once

        async def one(part: UploadFile, ticket):
            async with gate:
                data = await read_part(part, settings.max_upload_bytes)
                return await service.saliency(data, opts, ticket)

        with service.admit(len(parts)) as ticket:
            results = await asyncio.gather(*(one(p, ticket) for p in parts),
                                           return_exceptions=True)  # fmt: skip
    out = []
    for name, r in zip(names, results, strict=True):
        if isinstance(r, ServiceError):
            out.append({"file": name, "error": {"status": r.status, "message": r.message}})
        elif isinstance(r, BaseException):
            raise r
        elif isinstance(r.body, dict):
            out.append({"file": name, "shape": list(r.shape), "model_ms": round(r.model_ms, 1),
                        **r.body})  # fmt: skip
        else:
            out.append({"file": name, "shape": list(r.shape), "model_ms": round(r.model_ms, 1),
                        "media_type": r.media_type,
                        "data": base64.b64encode(r.body).decode()})  # fmt: skip
    return {"model": settings.model_name, "version": service.model_version, "results": out}
