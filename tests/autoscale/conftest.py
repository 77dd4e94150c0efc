"""The autoscaling cluster test (marker ``autoscale``) needs KEDA built from its Go module (a long first build)
and runs several minutes: it runs only when ``-m`` names it (``make test-autoscale``)."""

from __future__ import annotations

import pytest

MARKER = "autoscale"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if MARKER in (config.getoption("markexpr") or ""):
        return
    keep = [item for item in items if item.get_closest_marker(MARKER) is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
