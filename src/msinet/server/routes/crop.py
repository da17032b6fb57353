"""POST /v1/crop: saliency-aware crops of one image, as JSON boxes or the cropped image."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from msinet.server.routes import service_of, settings_of
from msinet.server.routes.saliency import IMAGE_BODY, uploaded_images
from msinet.server.service import CropRequest, ServiceError

router = APIRouter(prefix="/v1", tags=["crop"])


@router.post("/crop", openapi_extra=IMAGE_BODY, response_class=Response,
             responses={200: {"content": {"application/json": {}, "image/jpeg": {},
                                          "image/png": {}}}})  # fmt: skip
async def crop(
    request: Request,
    aspect: Annotated[list[str], Query(max_length=16)] = ["1:1"],  # noqa: B006 - FastAPI's default
    format: Annotated[Literal["json", "jpeg", "png"], Query()] = "json",
    min_scale: Annotated[float, Query(gt=0.0, le=1.0)] = 1.0,
    keep: Annotated[float, Query(gt=0.0, le=1.0)] = 0.95,
    regions: Annotated[int, Query(ge=0, le=50)] = 5,
) -> Response:
    """For each `aspect` (W:H, repeatable) the crop that holds the most predicted attention,
    as `[left, top, right, bottom]` in the image's pixels (right and bottom exclusive), with the
    focal point and the most salient regions; or, with `format=jpeg|png` and one aspect, the
    cropped image itself."""
    from msinet.crop import parse_aspect

    try:
        aspects = {spec: parse_aspect(spec) for spec in aspect}
    except ValueError as e:
        raise ServiceError(422, str(e)) from e
    if format != "json" and len(aspects) != 1:
        raise ServiceError(422, f"format={format} returns one cropped image: give one aspect")
    service = service_of(request)
    with service.admit(1) as ticket:  # before the upload is read
        ((_, data),) = await uploaded_images(request, "image", 1)
        body, media = await service.crop(data, CropRequest(aspects, format, min_scale, keep,
                                                           regions), ticket)  # fmt: skip
    headers = {"X-Model-Name": settings_of(request).model_name,
               "X-Model-Version": service.model_version}  # fmt: skip
    if isinstance(body, dict):
        return JSONResponse(body, headers=headers)
    return Response(body, media_type=media, headers=headers)
