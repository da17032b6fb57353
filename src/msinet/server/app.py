"""`create_app(settings)`: the FastAPI application around one model instance."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from msinet import __version__
from msinet.engine import Engine
from msinet.server.errors import CLIENT_CLOSED, error_for
from msinet.server.guard import RequestGuard
from msinet.server.observability import Metrics, MetricsMiddleware, redact_secrets_in_logs
from msinet.server.service import SaliencyService, ServiceError
from msinet.server.settings import Settings


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """`engine` may be given (tests, embedding, `msinet serve`, which loads it first);
    otherwise it is loaded from the settings at start-up."""
    from msinet.server.routes import aoi, crop, health, page, saliency, stream, v2

    settings = settings or Settings()
    settings.api_key  # noqa: B018 - fail fast on an unset key variable
    redact_secrets_in_logs()
    metrics = Metrics()
    service = SaliencyService(settings, metrics, engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        yield
        await service.stop()

    about = "MSI-Net visual saliency: where people will look in an image."
    # Swagger UI and ReDoc from the package's own files: the docs work without internet.
    app = FastAPIOffline(title="msinet", version=__version__, lifespan=lifespan,
                         description=about)  # fmt: skip
    app.state.settings, app.state.metrics, app.state.service = settings, metrics, service
    app.state.streams = 0  # open /v1/stream WebSockets, against settings.stream_cap
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["*"])  # fmt: skip
    # Bodies: one upload (a v2 JSON request included), or one per image of a :batch.
    upload = settings.max_upload_bytes
    app.add_middleware(RequestGuard, api_key=settings.api_key, public=settings.public_routes,
                       max_body=upload, batch_body=upload * settings.max_batch_images,
                       body_timeout=settings.body_timeout_s, max_headers=settings.max_headers,
                       inflight_bodies=settings.max_inflight_upload_bytes,
                       batch_held=upload * saliency.READ_AHEAD,
                       on_refused=lambda reason: metrics.rejected.labels(reason).inc())  # fmt: skip
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, e: ServiceError):
        return JSONResponse(error_for(request.url.path, e.status, e.message), e.status,
                            headers=e.headers)  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        """404, 405 and the like in the same error body as every other status."""
        return JSONResponse(error_for(request.url.path, e.status_code, str(e.detail)),
                            e.status_code, headers=getattr(e, "headers", None))  # fmt: skip

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, e: ClientDisconnect):
        """The client closed the connection before its request was read: nobody gets this
        answer, but the metrics and the access log count it as such (nginx's 499), not as a
        server error."""
        return JSONResponse(error_for(request.url.path, CLIENT_CLOSED,
                                      "client closed the connection"), CLIENT_CLOSED)  # fmt: skip

    @app.exception_handler(Exception)
    async def server_error(request: Request, e: Exception):
        """A bug or an exhausted resource still answers in the documented shape, in one line."""
        message = f"internal error: {type(e).__name__}: {e}"[:300]
        return JSONResponse(error_for(request.url.path, 500, message), 500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        details = [{"loc": list(x.get("loc", [])), "msg": x.get("msg")} for x in e.errors()]
        msg = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details)
        return JSONResponse(error_for(request.url.path, 422, msg, details=details), 422)

    for router in (saliency.router, crop.router, aoi.router, stream.router, v2.router,
                   health.router, page.router):  # fmt: skip
        app.include_router(router)
    return app


# `msinet serve --workers N` hands its settings to the workers it starts in this variable.
SETTINGS_VARIABLE = "MSINET_SERVE_SETTINGS"


def app_from_env() -> FastAPI:
    """For `uvicorn --factory` with several workers: the settings `msinet serve` put in
    SETTINGS_VARIABLE (else MSINET_* variables), and this worker's connection limits."""
    import os

    from msinet.server.connections import ConnectionLimits, configure

    given = os.environ.get(SETTINGS_VARIABLE)
    settings = Settings.model_validate_json(given) if given else Settings()
    configure(ConnectionLimits.of(settings))
    return create_app(settings)
