"""The controller stand-in's state files: what a restarted controller reads back must equal what it wrote, and a
write cut short must leave the previous file (otherwise a restart reloads an HAProxy it should adopt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.controller import _config_from_json, _config_to_json, _write_atomically
from tests.gateway.haproxy_config import ProxyConfig, realize, runtime_changes
from tests.gateway.model import ObjectKey, PathMatch
from tests.gateway.translate import BackendPlan, DataplanePlan, FrontendPlan, RoutingEntry, ServiceGroup, Target

A, B, C = (Target(f"198.18.0.{i}", 8080) for i in range(11, 14))


def _config(groups: tuple[ServiceGroup, ...]) -> ProxyConfig:
    entries = (RoutingEntry(("asr.example.com", "*.example.org"), PathMatch("PathPrefix", "/ws"), "route.ns.r.0"),
               RoutingEntry((), PathMatch("Exact", "/api/transcribe"), "route.ns.r.1"))
    plan = DataplanePlan(frontends=(FrontendPlan("listener.ns.web.http", "ns/web/http", 18080, entries),),
                         backends=(BackendPlan("route.ns.r.0", groups), BackendPlan("route.ns.r.1", ())))
    return realize(plan, 19090)


@pytest.mark.parametrize("groups", [
    pytest.param((), id="no endpoints"),
    pytest.param((ServiceGroup("svc-a", ObjectKey("ns", "svc-a"), 1, (A, B), 1),
                  ServiceGroup("svc-b", ObjectKey("ns", "svc-b"), 0, (C,), 0)), id="two services, free slots"),
])
def test_applied_config_round_trips(groups: tuple[ServiceGroup, ...]) -> None:
    config = _config(groups)
    back = _config_from_json(_config_to_json(config))
    assert back == config
    assert runtime_changes(back, config) == []  # an adopted HAProxy with an unchanged world: nothing to do


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "applied.json"
    _write_atomically(path, "old")
    _write_atomically(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["applied.json"]


def test_a_write_cut_short_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "applied.json"
    path.write_text('{"complete": true}')

    def dies_midway(fd: int) -> None:  # the bytes are written, then the process "is killed" before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr("os.fsync", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        _write_atomically(path, '{"complete": false, "longer": 1}')
    monkeypatch.undo()
    assert path.read_text() == '{"complete": true}'
