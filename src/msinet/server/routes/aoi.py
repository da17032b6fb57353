"""POST /v1/aoi: the attention report of one image for named areas of interest (msinet.aoi)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from msinet.aoi import RegionError, from_json
from msinet.aoi.regions import checked
from msinet.server.routes import read_limited, service_of, settings_of
from msinet.server.routes.saliency import read_part
from msinet.server.service import ServiceError

router = APIRouter(prefix="/v1", tags=["aoi"])

MAX_REGIONS_TEXT = 16 * 1024  # bytes of region JSON: MAX_REGIONS boxes with long names fit

AOI_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image", "regions"],
        "properties": {"image": {"type": "string", "format": "binary"},
                       "regions": {"type": "string", "description": 'JSON: {"name": [x, y, '
                                   'w, h], ...} or [{"name": ..., "box": [x, y, w, h]}, ...]'}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}  # fmt: skip


def parse_regions(text: str) -> list:
    if len(text.encode()) > MAX_REGIONS_TEXT:
        raise ServiceError(413, f"regions: over {MAX_REGIONS_TEXT} bytes")
    try:
        return checked(from_json(json.loads(text)))
    except RegionError as e:
        raise ServiceError(422, f"regions: {e}") from None
    except ValueError as e:
        raise ServiceError(422, f"regions: not JSON ({e})") from None


async def image_and_regions(request: Request, query: str | None) -> tuple[str, bytes, list]:
    """(file name, image bytes, regions) from a multipart form (`image` file, `regions` JSON
    field) or an image/* body with `?regions=`."""
    limit = settings_of(request).max_upload_bytes
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        if query is None:
            raise ServiceError(422, "regions are missing: give ?regions=JSON with an image body")
        regions = parse_regions(query)  # before the body is read
        return "", await read_limited(request, limit), regions
    if ctype != "multipart/form-data":
        raise ServiceError(415, f"unsupported content type {ctype or '(none)'}: send "
                           "multipart/form-data with 'image' and 'regions' fields")  # fmt: skip
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=limit)
    except ClientDisconnect:
        raise
    except Exception as e:  # malformed multipart, too many parts
        raise ServiceError(400, f"malformed multipart body: {e}") from e
    try:
        image, text = form.get("image"), form.get("regions", query)
        if not isinstance(image, UploadFile):
            raise ServiceError(422, "multipart field 'image' with an image file is missing")
        if not isinstance(text, str):
            raise ServiceError(422, "field 'regions' (JSON text) is missing")
        regions = parse_regions(text)
        return image.filename or "", await read_part(image, limit), regions
    finally:
        await form.close()


REGIONS_QUERY = Query(
    max_length=MAX_REGIONS_TEXT,
    description="the regions as JSON, for an "
    "image/* body (a multipart request sends them as its 'regions' field)",
)


@router.post("/aoi", openapi_extra=AOI_BODY)
async def aoi(request: Request,
              regions: Annotated[str | None, REGIONS_QUERY] = None) -> JSONResponse:  # fmt: skip
    """Expected share of fixations (`share`), share of viewers who fixate it (`seen_by`) and
    attention per area (`lift`) for each named box (pixels, or fractions of the image when all
    four numbers are in 0..1; at most 64), with how concentrated attention is and the
    salient places no box covers (`leaks`); as `msinet aoi --json`."""
    service = service_of(request)
    with service.admit(1) as ticket:  # before the upload is read
        name, data, specs = await image_and_regions(request, regions)
        answer = await service.aoi(data, specs, ticket)
    return JSONResponse({"image": name or None, **answer},
                        headers={"X-Model-Name": settings_of(request).model_name,
                                 "X-Model-Version": service.model_version})  # fmt: skip
