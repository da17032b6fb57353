"""`msinet serve --ray`: the same FastAPI app as `msinet serve`, as a Ray Serve deployment.

Every route (the page, /v1, /v2, health, metrics) comes from `create_app`, and so does the
batching: each replica runs msinet's own batcher, which starts an idle model at once and,
while a call runs, gathers everything that arrives for the next one. (`@serve.batch` only
grouped requests inside its wait window, even while the model was busy: 8-request bursts went
through unbatched.) Serve's router spreads requests over replicas (bounded by
`max_ongoing_requests`); each replica admits by expected wait as the plain server does.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass

from msinet.scale.cluster import interrupt_on_sigterm, quiet_defaults, start_ray
from msinet.server.settings import Settings


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

    app = create_app(settings)
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


class _AlreadyStarted(logging.Filter):
    """msinet starts Serve with the host and port itself; `serve.run` then reconnects and logs
    that "New http_options ... will not be applied", which is wrong here, on every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will not be applied" not in record.getMessage()


def run(settings: Settings, options: RayOptions) -> None:
    """Start Ray (or join RAY_ADDRESS), deploy, and serve until SIGINT or SIGTERM; then drain:
    requests in flight finish, the application is deleted, Serve and Ray shut down."""
    quiet_defaults()
    from ray import serve

    start_ray()
    # after ray.init, which installs its own SIGTERM handler (a stack dump, then an abort)
    signal.signal(signal.SIGTERM, interrupt_on_sigterm)  # a container's stop: drain as Ctrl-C
    logging.getLogger("ray.serve").addFilter(_AlreadyStarted())
    serve.start(http_options={"host": settings.host, "port": settings.port})
    try:
        serve.run(build_application(settings, options), name="msinet", route_prefix="/")
        print(f"msinet: serving on http://{settings.host}:{settings.port} (Ray Serve); "
              "Ctrl-C or SIGTERM drains and stops", flush=True)  # fmt: skip
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("msinet: draining: finishing requests in flight", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one drain, however many signals
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            serve.delete("msinet")  # replicas finish in-flight requests first
            serve.shutdown()
        finally:
            import ray

            ray.shutdown()
