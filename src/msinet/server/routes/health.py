"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from msinet.server.routes import service_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready once the model is loaded and warmed up."""
    service = service_of(request)
    if not service.ready:
        return JSONResponse({"status": "loading"}, 503, headers={"Retry-After": "5"})
    batcher, check = service.batcher, service.engine.self_check
    body = {"status": "ready", "engine": service.engine.name,
            "queue_depth": batcher.depth if batcher else 0}  # fmt: skip
    if check is not None:
        body["self_check"] = check.as_dict() | {"summary": check.summary()}
    return JSONResponse(body)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
