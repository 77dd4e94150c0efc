"""Shared pytest configuration: the local control plane and the real object-store servers."""

pytest_plugins = [
    "tests.controlplane.fixtures",
    "tests.servers.fixtures",
    "tests.procnode.fixtures",
]


import pytest  # noqa: E402

# Fixtures that build or load the tiny test model: a test using any of them (even through another
# fixture) is marked `model`, so `make test-fast` (-m "not cluster and not slow and not model") needs none.
MODEL_FIXTURES = frozenset({"tiny_model_dir", "tiny_onnx_dir"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
