"""Open Inference Protocol v2 (KServe / Triton HTTP/REST), for model `msinet`.

`POST /v2/models/msinet/infer` takes one of two inputs:
- `image`: UINT8, shape [H, W, 3], an RGB image in row-major order; the full pipeline runs
  (resize, pad, model, map back) and output `saliency` is FP32 [H, W] in 0..1;
- `images`: FP32, shape [B, 3, H, W], already preprocessed (RGB 0..255, H and W multiples of 8,
  as `msinet.imaging.preprocess` makes); output `saliency` is FP32 [B, H, W] at that size.

Inputs come as JSON `data`, or raw little-endian bytes after the JSON with the binary tensor
extension (`Inference-Header-Content-Length`, `binary_data_size`), as tritonclient sends them
with `binary_data=True`; the output is binary when asked for (`binary_data` on the output, or
`binary_data_output` on the request).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from msinet.server.routes import service_of, settings_of
from msinet.server.service import ServiceError

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])


class InferInput(BaseModel):
    name: Literal["image", "images"]
    shape: list[int] = Field(min_length=3, max_length=4)
    datatype: Literal["UINT8", "FP32"]
    data: list[Any] | None = None  # None: `parameters.binary_data_size` bytes after the JSON
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
RAW = {"UINT8": np.dtype("u1"), "FP32": np.dtype("<f4")}  # the binary extension's byte layouts
HEADER_LENGTH = "inference-header-content-length"


def _checked_size(inp: InferInput, max_pixels: int) -> int:
    """The shape's size (exact integers, no overflow), within the pixel limit."""
    if any(d < 1 for d in inp.shape):
        raise ServiceError(422, f"input {inp.name}: every dimension must be >= 1, got {inp.shape}")
    n = math.prod(inp.shape)
    if n > 3 * max_pixels:
        raise ServiceError(413, f"input {inp.name}: shape {inp.shape} exceeds the pixel limit")
    return n


def _in_range(inp: InferInput, a: np.ndarray) -> None:
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 255:
        raise ServiceError(422, f"input {inp.name}: values must be finite and within 0..255")


def _array(inp: InferInput, dtype, max_pixels: int,
           raw: memoryview | None = None) -> np.ndarray:  # fmt: skip
    """The input as an array, every check made before anything large is allocated: the shape's
    size against the pixel limit, then the data: raw bytes of exactly the shape's size, or JSON
    flat or nested as the shape, of the datatype's JSON type (UINT8 integers, FP32 numbers;
    never strings or booleans), within 0..255 (the model's input range; 1e38 would overflow
    FP32)."""
    n = _checked_size(inp, max_pixels)
    if raw is not None:
        if len(raw) != n * RAW[inp.datatype].itemsize:
            raise ServiceError(422, f"input {inp.name}: {len(raw)} binary bytes for shape "
                               f"{inp.shape} of {inp.datatype}")  # fmt: skip
        a = np.frombuffer(raw, RAW[inp.datatype])
        _in_range(inp, a)
        return np.asarray(a.reshape(inp.shape), dtype)  # UINT8 image: the body's own bytes
    if inp.data is None:
        raise ServiceError(422, f"input {inp.name}: no data and no binary_data_size")
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
    _in_range(inp, a)
    return a.reshape(inp.shape).astype(dtype)


def _split(raw: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """(JSON, binary section, not copied) of a body; all JSON without the extension."""
    if header_length is None:
        return raw, memoryview(b"")
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise ServiceError(400, f"{HEADER_LENGTH} must be a whole number of bytes, at most "
                           f"the body's {len(raw)}, not {header_length!r}")  # fmt: skip
    n = int(header_length)
    return raw[:n], memoryview(raw)[n:]


def _binary_of(inp: InferInput, binary: memoryview) -> memoryview | None:
    """The input's raw bytes from the binary section (one input per request), or None."""
    size = (inp.parameters or {}).get("binary_data_size")
    if size is None:
        if binary:
            raise ServiceError(422, f"{len(binary)} binary bytes after the JSON, but input "
                               f"{inp.name} has no binary_data_size")  # fmt: skip
        return None
    if type(size) is not int or size != len(binary):
        raise ServiceError(422, f"input {inp.name}: binary_data_size {size!r} does not match "
                           f"the {len(binary)} bytes after the JSON")  # fmt: skip
    if inp.data is not None:
        raise ServiceError(422, f"input {inp.name}: both data and binary_data_size")
    return binary


def _binary_output(body: InferRequest) -> bool:
    wanted = [(o.get("parameters") or {}).get("binary_data") for o in body.outputs or []]
    if any(w is not None for w in wanted):
        return any(w is True for w in wanted)
    return (body.parameters or {}).get("binary_data_output") is True


DATA = "\0data"  # where the values go in an answer written by _json_chunks


def _json_chunks(answer: dict, values: np.ndarray, block: int = 1 << 16):
    """The answer as JSON with `values` where it holds DATA, written a block of values at a
    time: whole, a 5 MP map's list of Python floats took ~170 MB and its text ~100 MB more.
    The same bytes as JSONResponse (compact separators, Python's float repr)."""
    text = json.dumps(answer, separators=(",", ":"), ensure_ascii=False)
    before, after = text.split(json.dumps(DATA))
    yield (before + "[").encode()
    for i in range(0, values.size, block):
        text = json.dumps(values[i : i + block].tolist(), separators=(",", ":"))
        yield (text[1:-1] if i == 0 else "," + text[1:-1]).encode()
    yield ("]" + after).encode()


def _inlined(schema: dict) -> dict:
    """A pydantic JSON schema with its $defs inlined (OpenAPI resolves '#' at its own root)."""
    defs = schema.pop("$defs", {})

    def walk(x):
        if isinstance(x, dict):
            if "$ref" in x:
                return walk(defs[x["$ref"].rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in x.items()}
        return [walk(v) for v in x] if isinstance(x, list) else x

    return walk(schema)


REQUEST_DOC = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _inlined(InferRequest.model_json_schema())},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}  # fmt: skip


@router.post("/models/{name}/infer", openapi_extra=REQUEST_DOC)
async def infer(request: Request, name: str) -> Response:
    _model(request, name)
    text, binary = _split(await request.body(), request.headers.get(HEADER_LENGTH))
    try:
        body = InferRequest.model_validate_json(text)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False, include_context=False),
                                     body=None) from None  # fmt: skip
    service = service_of(request)
    inp = body.inputs[0]
    raw = _binary_of(inp, binary)
    del binary
    max_pixels = settings_of(request).max_pixels
    if inp.name == "image":
        if inp.datatype != "UINT8" or len(inp.shape) != 3 or inp.shape[2] != 3:
            raise ServiceError(422, "input image must be UINT8 with shape [H, W, 3]")
        a = _array(inp, np.float64 if raw is None else np.uint8, max_pixels, raw)
        with service.admit(1) as ticket, service.hold_count(inp.shape[0] * inp.shape[1]):
            m, geometry, _ = await service.predict_map(np.asarray(a, np.uint8), ticket)
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
        a = _array(inp, np.float32, max_pixels, raw)
        with service.admit(len(a)) as ticket, service.hold_count(len(a) * h * w):
            results = await asyncio.gather(*(service.run_model(x, ticket) for x in a))
        out = np.stack([m for m, _ in results])
    out = out.astype("<f4", copy=False)
    answer = {"model_name": name, "model_version": service.model_version, "id": body.id}
    output = {"name": "saliency", "datatype": "FP32", "shape": list(out.shape)}
    if not _binary_output(body):
        return StreamingResponse(_json_chunks({**answer, "outputs": [{**output, "data": DATA}]},
                                              out.ravel()),
                                 media_type="application/json")  # fmt: skip
    data = out.tobytes()
    output["parameters"] = {"binary_data_size": len(data)}
    header = json.dumps({**answer, "outputs": [output]}).encode()
    return Response(header + data, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})  # fmt: skip
