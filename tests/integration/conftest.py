"""Integration tests: the service through TestClient and live servers, the tritonclient, Ray,
video and browsers. All are `slow`: out of the default run (README: Development); CI runs
them."""

import contextlib
import threading
import time
from pathlib import Path

import pytest
import uvicorn

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m 'not slow' deselects
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)


@contextlib.contextmanager
def served(app, timeout: float = 10, **config):
    """`app` on a real uvicorn server in a thread, on a free loopback port: yields the port."""
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                        **config))  # fmt: skip
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield srv.servers[0].sockets[0].getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(10)
