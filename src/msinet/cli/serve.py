"""`msinet serve`: the HTTP service, alone or on Ray Serve."""

from __future__ import annotations

import argparse
import os

from msinet.cli.common import add_flags, fail, missing_extra


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from msinet.engine import check_weights, load_engine
    from msinet.pipeline import resolve
    from msinet.server.app import SETTINGS_VARIABLE, create_app
    from msinet.server.connections import ConnectionLimits, configure
    from msinet.server.memory import return_freed_memory
    from msinet.server.settings import Settings
    from msinet.weights.store import WeightsError

    # before the model loads: its build's large blocks, freed, went back to glibc's heaps
    # rather than to the system (an idle server held 904 MB instead of 520)
    return_freed_memory()
    given = {k: getattr(args, k) for k in Settings.model_fields if hasattr(args, k)}
    try:
        settings = Settings(**given)
        settings.api_key  # noqa: B018 - an unset key variable is an error now, not per request
        name, weights = resolve(settings.weights, settings.engine, settings.device)
        if args.ray or settings.workers > 1:
            # each replica or worker loads its own model: the file is checked here (seal,
            # hashes, architecture), so that a bad one is one line and exit 2, without a
            # model built only to be thrown away
            check_weights(name, weights)
        if args.ray:
            from msinet.scale.serve import RayOptions, parse_autoscale, run

            autoscale = parse_autoscale(args.autoscale) if args.autoscale else None
            run(settings, RayOptions(args.replicas, autoscale, args.num_cpus,
                                     args.max_ongoing_requests))  # fmt: skip
            return 0
        if settings.workers > 1:  # each worker builds its app from these settings
            os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
            uvicorn.run("msinet.server.app:app_from_env", factory=True, host=settings.host,
                        port=settings.port, workers=settings.workers,
                        timeout_graceful_shutdown=30,
                        **configure(ConnectionLimits.of(settings)))  # fmt: skip
            return 0
        # The model loads here, before any server starts: a bad weights file is one line and
        # exit 2, not uvicorn's "Application startup failed" traceback.
        engine = load_engine(name, weights, settings.threads, device=settings.device,
                             amp=settings.amp)  # fmt: skip
        app = create_app(settings, engine=engine)
    except (ValidationError, ValueError, WeightsError) as e:
        return fail(str(e).splitlines()[0] if isinstance(e, ValidationError) else str(e))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=30,
        **configure(ConnectionLimits.of(settings)),
    )
    return 0


def add_serve_parser(sub) -> None:
    """`msinet serve`'s flags come from the server's Settings; without the serve extra the
    command still parses and says what to install (predict and the rest need no pydantic)."""
    p = sub.add_parser("serve", help="run the HTTP service (web page at /, API docs at /docs)")
    try:
        from msinet.server.settings import Settings
    except ModuleNotFoundError as e:
        message = missing_extra(e) or str(e)
        p.set_defaults(func=lambda _: fail(message), any_flags=True)
        return
    add_flags(p, Settings)
    p.add_argument("--ray", action="store_true", help="deploy on Ray Serve (msinet[ray])")
    p.add_argument("--replicas", type=int, default=1, help="--ray: fixed replica count")
    p.add_argument("--autoscale", metavar="MIN:MAX", help="--ray: autoscale replicas")
    p.add_argument("--num-cpus", type=float, default=1.0, help="--ray: CPUs per replica")
    p.add_argument("--max-ongoing-requests", type=int, default=32, help="--ray: per replica")
    p.set_defaults(func=cmd_serve)
