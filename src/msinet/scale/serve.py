"""`msinet serve --ray`: the same FastAPI app as `msinet serve`, as a Ray Serve deployment.

Every route (the page, /v1, /v2, health, metrics) comes from `create_app`; only batching
changes: Ray Serve's `@serve.batch` groups concurrent requests inside each replica, and Serve's
router spreads requests over replicas (bounded by `max_ongoing_requests`).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from msinet.engine import Engine
from msinet.server.settings import Settings


class RayBatcher:
    """The service's batcher interface (server.batcher.BatcherLike) over `@serve.batch`; used
    inside a Serve replica."""

    def __init__(self, engine: Engine, max_batch_size: int, max_wait_ms: float, observe=None,
                 inflight: int = 1) -> None:  # fmt: skip
        from ray import serve

        self.executor = ThreadPoolExecutor(max_workers=inflight, thread_name_prefix="msinet-model")
        observe = observe or (lambda **_: None)

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=max_wait_ms / 1000,
                     max_concurrent_batches=inflight)  # fmt: skip
        async def predict(images: list[np.ndarray]) -> list[np.ndarray]:
            start = time.perf_counter()
            maps = await asyncio.get_running_loop().run_in_executor(
                self.executor, engine.predict, np.stack(images)
            )
            observe(batch_size=len(images), inference_s=time.perf_counter() - start)
            return list(maps)

        self._predict = predict

    depth = 0  # Ray Serve queues requests before the replica; see max_ongoing_requests

    def expected_wait(self, images: int) -> float:
        return 0.0  # Ray Serve admits by max_ongoing_requests per replica

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.executor.shutdown(wait=True)

    async def submit(self, image: np.ndarray, timeout: float) -> np.ndarray:
        return await asyncio.wait_for(self._predict(image), timeout)


def ray_batcher(engine: Engine, settings: Settings, observe) -> RayBatcher:
    s = settings
    return RayBatcher(engine, s.max_batch_size, s.max_wait_ms, observe, s.inflight_batches)


@dataclass(frozen=True)
class RayOptions:
    replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max) replicas
    num_cpus: float = 1.0  # per replica; set threads to match
    max_ongoing_requests: int = 32


def parse_autoscale(spec: str) -> tuple[int, int]:
    lo, _, hi = spec.partition(":")
    if not (lo.isdigit() and hi.isdigit()) or int(lo) < 1 or int(hi) < int(lo):
        raise ValueError(f"--autoscale takes MIN:MAX replicas (e.g. 1:4), got {spec!r}")
    return int(lo), int(hi)


def build_application(settings: Settings, options: RayOptions):
    """A Ray Serve application: `serve.run(build_application(...))`."""
    from ray import serve

    from msinet.server.app import create_app

    app = create_app(settings, batcher=ray_batcher)
    scaling = (
        {"autoscaling_config": {"min_replicas": options.autoscale[0],
                                "max_replicas": options.autoscale[1],
                                "target_ongoing_requests": settings.max_batch_size}}
        if options.autoscale else {"num_replicas": options.replicas}
    )  # fmt: skip

    @serve.deployment(
        name="msinet",
        ray_actor_options={"num_cpus": options.num_cpus},
        max_ongoing_requests=options.max_ongoing_requests,
        health_check_period_s=10,
        health_check_timeout_s=30,
        **scaling,
    )
    @serve.ingress(app)
    class MSINetDeployment:
        """One replica: one model instance; the app's lifespan loads and warms it up."""

        def check_health(self) -> None:
            if not self.app.state.service.ready:  # this replica's app, after its lifespan ran
                raise RuntimeError("model not ready")

    return MSINetDeployment.bind()


def app_builder(args: dict[str, str]):
    """For `serve run msinet.scale.serve:app_builder key=value ...` and Serve config files:
    keys are Settings fields (engine, weights, max_batch_size, ...) plus replicas, autoscale,
    num_cpus and max_ongoing_requests."""
    args = dict(args)
    options = RayOptions(
        replicas=int(args.pop("replicas", 1)),
        autoscale=parse_autoscale(args.pop("autoscale")) if "autoscale" in args else None,
        num_cpus=float(args.pop("num_cpus", 1)),
        max_ongoing_requests=int(args.pop("max_ongoing_requests", 32)),
    )
    return build_application(Settings(**args), options)


def run(settings: Settings, options: RayOptions) -> None:
    """Start Ray (or join RAY_ADDRESS), deploy, and serve until interrupted."""
    import ray
    from ray import serve

    ray.init(ignore_reinit_error=True)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, options), name="msinet", route_prefix="/",
              blocking=True)  # fmt: skip
