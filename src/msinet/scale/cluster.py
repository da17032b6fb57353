"""The local Ray that msinet's Ray commands start: no dashboard and no auth token by default.

A plain `ray.init()` opens the dashboard on port 8265 and, in recent Ray, writes an auth token
under ~/.ray/ for the new local cluster: neither is asked for by `msinet predict --ray` or
`msinet serve --ray`. Joining a cluster (RAY_ADDRESS) keeps that cluster's settings, and
RAY_AUTH_MODE set by the user wins."""

from __future__ import annotations

import os

AUTH_MODE = "RAY_AUTH_MODE"


def quiet_defaults() -> None:
    """Call before Ray is first imported: Ray reads its configuration at import."""
    os.environ.setdefault(AUTH_MODE, "disabled")


def start_ray(**options) -> bool:
    """Start (or join) Ray unless this process already has; True if this call started it (and
    so should shut it down)."""
    quiet_defaults()
    import ray

    if ray.is_initialized():
        return False
    ray.init(include_dashboard=False, log_to_driver=False, **options)
    return True


def interrupt_on_sigterm(signum, frame) -> None:
    """A SIGTERM handler: stop as Ctrl-C does, so that `finally` blocks drain and shut down
    (Ray's own handler dumps a stack and aborts)."""
    raise KeyboardInterrupt
