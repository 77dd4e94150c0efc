"""Fixtures for the storage suite. The server fixtures (minio_server, cos_standin) come from
tests/servers/fixtures.py, registered by the root conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.storage.backends import BACKENDS, Backend, make_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh store on each backend in turn."""
    return make_backend(request.param, request, tmp_path)
