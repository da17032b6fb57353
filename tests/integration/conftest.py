"""Integration tests: the service through TestClient and live servers, the tritonclient, Ray,
video and browsers. All are `slow`: out of the default run (README: Development); CI runs
them."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m 'not slow' deselects
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
