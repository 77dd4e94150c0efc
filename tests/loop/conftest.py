"""The full loop (marker ``loop_full``) takes 12–30 minutes: it runs only when ``-m`` names it
(``make test-loop``), so ``make test`` and a plain ``pytest`` leave it out and say so."""

from __future__ import annotations

import pytest

FULL = "loop_full"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if FULL in (config.getoption("markexpr") or ""):
        return
    keep = [item for item in items if item.get_closest_marker(FULL) is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
