"""Shared pytest configuration: the local control plane and the real object-store servers."""

pytest_plugins = [
    "tests.controlplane.fixtures",
    "tests.servers.fixtures",
    "tests.procnode.fixtures",
]
