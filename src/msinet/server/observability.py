"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

import logging
import re
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("msinet_requests_total", "HTTP requests",
                                ["route", "method", "status"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("msinet_request_seconds", "HTTP request latency",
                                 ["route", "method", "status"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)  # fmt: skip
        self.batch_size = Histogram("msinet_batch_size", "images per model call",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
                                    registry=self.registry)  # fmt: skip
        self.inference = Histogram("msinet_inference_seconds", "model time per batch",
                                   buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.calls = Counter("msinet_model_calls_total", "model calls: threads=all for a lone "
                             "call (every intra-op thread), one for a call beside others (its "
                             "own thread)", ["threads"], registry=self.registry)  # fmt: skip
        self.stage = Histogram("msinet_stage_seconds", "one image's time in each stage: decode "
                               "(+ preprocess), queue, model (its batch's call), encode (map back "
                               "+ encode)", ["stage"], buckets=LATENCY_BUCKETS,
                               registry=self.registry)  # fmt: skip
        self.queue_depth = Gauge("msinet_queue_depth", "images waiting for the model",
                                 registry=self.registry)  # fmt: skip
        self.rejected = Counter("msinet_rejected_total", "requests refused",
                                ["reason"], registry=self.registry)  # fmt: skip
        self.engine = Gauge("msinet_engine_info", "1 for the engine that runs; requested: "
                            "the engine asked for (differs when int8 fell back)",
                            ["engine", "requested"], registry=self.registry)  # fmt: skip
        self.self_check_cc = Gauge("msinet_int8_self_check_cc", "CC of the int8 engine's probe "
                                   "maps against fp32 on this CPU (below 0.995: fell back)",
                                   registry=self.registry)  # fmt: skip
        self.fallback = Gauge("msinet_int8_fallback", "1 when the int8 engine failed its "
                              "self-check on this CPU and fp32 runs instead",
                              registry=self.registry)  # fmt: skip

    def engine_loaded(self, engine) -> None:
        check = engine.self_check  # only the int8 engine carries one, fallen back or not
        self.engine.labels(engine.name, "onnx-int8" if check else engine.name).set(1)
        if check is not None:
            self.fallback.set(0 if check.passed else 1)
            if check.probe_cc is not None:
                self.self_check_cc.set(check.probe_cc)

    def stages(self, timing) -> None:
        for stage, ms in timing.__dict__.items():
            self.stage.labels(stage).observe(ms / 1e3)

    def observe(self, batch_size: int | None = None, inference_s: float | None = None,
                queue_depth: int | None = None, threads: str | None = None) -> None:  # fmt: skip
        if threads is not None:
            self.calls.labels(threads).inc()
        if batch_size is not None:
            self.batch_size.observe(batch_size)
        if inference_s is not None:
            self.inference.observe(inference_s)
        if queue_depth is not None:
            self.queue_depth.set(queue_depth)


def route_label(scope) -> str:
    """A label from a closed set, whatever path is asked for: the matched route's template;
    a plain route's own path (/docs, /openapi.json, which set no "route"); one label per mount
    (static files); `other` for everything else (404s)."""
    from starlette.routing import Mount

    route = getattr(scope.get("route"), "path", None)
    if route is not None:
        return route
    path = scope["path"]
    for r in getattr(scope.get("app"), "routes", ()):
        if isinstance(r, Mount):
            if path.startswith(r.path.rstrip("/") + "/"):
                return r.path.rstrip("/") + "/{path}"
        elif getattr(r, "path", None) == path:
            return path
    return "other"


class MetricsMiddleware:
    """Counts and times every HTTP request by route template, method and status.

    Plain ASGI rather than `@app.middleware("http")`, whose response streaming costs a few
    event-loop hops per request."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            labels = (route_label(scope), scope["method"], str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)


# `?key=...` (the web page's WebSocket key) and the like, in any logged URL.
SECRET_QUERY = re.compile(r"([?&](?:key|api[-_]?key|token|access_token)=)[^&\s\"']*", re.I)


def redact(text: str) -> str:
    return SECRET_QUERY.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """No secret reaches a log line: query keys in uvicorn's access and WebSocket lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_secrets_in_logs() -> None:
    """On the loggers uvicorn writes requests to (once per process)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
