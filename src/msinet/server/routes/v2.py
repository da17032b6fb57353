"""Open Inference Protocol v2 (KServe / Triton HTTP/REST), for model `msinet`.

`POST /v2/models/msinet/infer` takes one of two inputs:
- `image`: UINT8, shape [H, W, 3], an RGB image in row-major order; the full pipeline runs
  (resize, pad, model, map back) and output `saliency` is FP32 [H, W] in 0..1;
- `images`: FP32, shape [B, 3, H, W], already preprocessed (RGB 0..255, H and W multiples of 8,
  as `msinet.preprocess` makes); output `saliency` is FP32 [B, H, W] at that size.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from msinet.server.routes import service_of, settings_of
from msinet.server.service import ServiceError

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])


class InferInput(BaseModel):
    name: Literal["image", "images"]
    shape: list[int] = Field(min_length=3, max_length=4)
    datatype: Literal["UINT8", "FP32"]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1, max_length=1)
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


def _model(request: Request, name: str) -> None:
    if name != settings_of(request).model_name:
        raise ServiceError(404, f"unknown model {name!r}")


@router.get("/health/live")
async def live() -> dict:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    ok = service_of(request).ready
    return JSONResponse({"ready": ok}, 200 if ok else 503)


@router.get("/models/{name}")
async def metadata(request: Request, name: str) -> dict:
    _model(request, name)
    service = service_of(request)
    return {
        "name": name,
        "versions": [service.model_version],
        "platform": f"msinet-{service.engine.name if service.engine else 'loading'}",
        "inputs": [
            {"name": "image", "datatype": "UINT8", "shape": [-1, -1, 3]},
            {"name": "images", "datatype": "FP32", "shape": [-1, 3, -1, -1]},
        ],
        "outputs": [{"name": "saliency", "datatype": "FP32", "shape": [-1, -1]}],
    }


@router.get("/models/{name}/ready")
async def model_ready(request: Request, name: str) -> JSONResponse:
    _model(request, name)
    ok = service_of(request).ready
    return JSONResponse({"name": name, "ready": ok}, 200 if ok else 503)


KINDS = {"UINT8": ("iu", "integers"), "FP32": ("iuf", "numbers")}  # numpy kinds the JSON may hold


def _array(inp: InferInput, dtype, max_pixels: int) -> np.ndarray:
    """The input as an array, every check made before anything large is allocated: the shape's
    size (exact integers, no overflow) against the pixel limit, then the data: flat or nested
    as the shape, of the datatype's JSON type (UINT8 integers, FP32 numbers; never strings or
    booleans), within 0..255 (the model's input range; 1e38 would overflow FP32)."""
    if any(d < 1 for d in inp.shape):
        raise ServiceError(422, f"input {inp.name}: every dimension must be >= 1, got {inp.shape}")
    n = math.prod(inp.shape)
    if n > 3 * max_pixels:
        raise ServiceError(413, f"input {inp.name}: shape {inp.shape} exceeds the pixel limit")
    nested = bool(inp.data) and isinstance(inp.data[0], list)
    if not nested and n != len(inp.data):
        raise ServiceError(422, f"input {inp.name}: shape {inp.shape} does not match "
                           f"{len(inp.data)} data elements")  # fmt: skip
    kinds, what = KINDS[inp.datatype]
    try:
        a = np.asarray(inp.data)
    except (TypeError, ValueError, OverflowError):
        a = None
    if a is None or a.dtype == object or a.shape not in ((n,), tuple(inp.shape)):
        raise ServiceError(422, f"input {inp.name}: data must be {n} {what}, flat or nested as "
                           f"the shape {inp.shape}")  # fmt: skip
    items = np.asarray(inp.data, dtype=object).ravel() if nested else inp.data
    if a.dtype.kind not in kinds or bool in set(map(type, items)):  # numpy reads True as 1
        raise ServiceError(422, f"input {inp.name}: {inp.datatype} data must be {what}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 255:
        raise ServiceError(422, f"input {inp.name}: values must be finite and within 0..255")
    return a.reshape(inp.shape).astype(dtype)


@router.post("/models/{name}/infer")
async def infer(request: Request, name: str, body: InferRequest) -> dict:
    _model(request, name)
    service = service_of(request)
    inp = body.inputs[0]
    max_pixels = settings_of(request).max_pixels
    if inp.name == "image":
        if inp.datatype != "UINT8" or len(inp.shape) != 3 or inp.shape[2] != 3:
            raise ServiceError(422, "input image must be UINT8 with shape [H, W, 3]")
        a = _array(inp, np.float64, max_pixels)
        with service.admit(1) as ticket, service.hold_count(inp.shape[0] * inp.shape[1]):
            m, geometry, _ = await service.predict_map(a.astype(np.uint8), ticket)
        out = service.pipeline.map_back(m, geometry)
    else:
        if inp.datatype != "FP32" or len(inp.shape) != 4 or inp.shape[1] != 3:
            raise ServiceError(422, "input images must be FP32 with shape [B, 3, H, W]")
        if inp.shape[2] % 8 or inp.shape[3] % 8:
            raise ServiceError(422, "input images: H and W must be multiples of 8")
        settings = settings_of(request)
        if inp.shape[0] > settings.max_queue:
            raise ServiceError(413, f"input images: a batch of {inp.shape[0]} is more than "
                               f"the server queues at once ({settings.max_queue})")  # fmt: skip
        h, w = inp.shape[2:]
        if h * w > settings.max_model_pixels:
            raise ServiceError(413, f"input images: {h}x{w} is over the limit of "
                               f"{settings.max_model_pixels} pixels for a preprocessed image "
                               "(send `image` for any size)")  # fmt: skip
        a = _array(inp, np.float32, max_pixels)
        with service.admit(len(a)) as ticket, service.hold_count(len(a) * h * w):
            results = await asyncio.gather(*(service.run_model(x, ticket) for x in a))
        out = np.stack([m for m, _ in results])
    return {
        "model_name": name,
        "model_version": service.model_version,
        "id": body.id,
        "outputs": [
            {
                "name": "saliency",
                "datatype": "FP32",
                "shape": list(out.shape),
                "data": out.astype(np.float32).ravel().tolist(),
            }
        ],
    }
