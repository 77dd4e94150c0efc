"""Table tests for the HAProxy side: slots, runtime commands vs reload, rendered routing; `haproxy -c` on the output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gateway.haproxy_config import (
    ProcessPaths,
    assign_slots,
    path_conditions,
    realize,
    render,
    runtime_changes,
    slot_capacity,
    use_backend_line,
)
from tests.gateway.model import ObjectKey, PathMatch
from tests.gateway.translate import BackendPlan, DataplanePlan, FrontendPlan, RoutingEntry, ServiceGroup, Target

A, B, C, D, E = (Target(f"198.18.0.{i}", 8080) for i in range(11, 16))


@pytest.mark.parametrize(("count", "previous", "expected"), [
    (0, 0, 4), (3, 0, 4), (4, 0, 4), (5, 0, 8), (9, 0, 16), (2, 8, 8), (9, 8, 16),
])
def test_slot_capacity(count: int, previous: int, expected: int) -> None:
    assert slot_capacity(count, previous) == expected


@pytest.mark.parametrize(("previous", "targets", "expected"), [
    pytest.param([], [B, A], (A, B, None, None), id="first time: sorted, lowest slots"),
    pytest.param([A, B, None, None], [B, A], (A, B, None, None), id="unchanged"),
    pytest.param([A, B, None, None], [A, C], (A, None, C, None), id="replaced: new one does not reuse the freed slot"),
    pytest.param([A, None, C, None], [A, C, D], (A, D, C, None), id="slot freed earlier is reused"),
    pytest.param([A, B, C, D], [A, B, C, E], (A, B, C, None, E, None, None, None), id="full: capacity doubles"),
    pytest.param([A, B, None, None], [], (None, None, None, None), id="all gone: slots stay"),
])
def test_assign_slots(previous: list[Target | None], targets: list[Target], expected: tuple[Target | None, ...]
                      ) -> None:
    assert assign_slots(previous, targets) == expected


def _plan(a: tuple[Target, ...], b: tuple[Target, ...], wa: int, wb: int, port: int = 30080) -> DataplanePlan:
    groups = (ServiceGroup("svc-a", ObjectKey("app", "svc-a"), 0, a, wa),
              ServiceGroup("svc-b", ObjectKey("app", "svc-b"), 0, b, wb))
    entry = RoutingEntry((), PathMatch("PathPrefix", "/"), "route.app.r.0")
    return DataplanePlan((FrontendPlan("gw.app.web.http", "k", port, (entry,)),),
                         (BackendPlan("route.app.r.0", groups),))


def test_weight_change_is_runtime_only() -> None:
    old = realize(_plan((A,), (B,), 9, 1), 9100)
    new = realize(_plan((A,), (B,), 1, 1), 9100, old)
    assert runtime_changes(old, new) == ["set weight route.app.r.0/svc-a:1 1"]


def test_endpoint_replacement_fills_before_it_vacates() -> None:
    old = realize(_plan((A,), (B,), 1, 1), 9100)
    new = realize(_plan((C,), (B,), 1, 1), 9100, old)
    assert runtime_changes(old, new) == [
        "set server route.app.r.0/svc-a:2 addr 198.18.0.13 port 8080",
        "set weight route.app.r.0/svc-a:2 1",
        "set server route.app.r.0/svc-a:2 state ready",
        "set weight route.app.r.0/svc-a:1 0",
        "set server route.app.r.0/svc-a:1 state maint",
    ]


def test_no_change_means_no_commands() -> None:
    old = realize(_plan((A,), (B,), 1, 1), 9100)
    assert runtime_changes(old, realize(_plan((A,), (B,), 1, 1), 9100, old)) == []


@pytest.mark.parametrize("change", [
    pytest.param(lambda: _plan((A, B, C, D, E), (B,), 1, 1), id="more endpoints than slots"),
    pytest.param(lambda: _plan((A,), (B,), 1, 1, port=30081), id="listener port"),
    pytest.param(lambda: DataplanePlan(), id="route removed"),
])
def test_structural_changes_need_a_reload(change: object) -> None:
    old = realize(_plan((A,), (B,), 1, 1), 9100)
    new = realize(change(), 9100, old)  # type: ignore[operator]
    assert runtime_changes(old, new) is None


@pytest.mark.parametrize(("match_type", "value", "expected"), [
    ("PathPrefix", "/", []),
    ("PathPrefix", "/api", ["{ path /api }", "{ path_beg /api/ }"]),
    ("PathPrefix", "/api/", ["{ path /api }", "{ path_beg /api/ }"]),
    ("Exact", "/api", ["{ path /api }"]),
])
def test_path_conditions(match_type: str, value: str, expected: list[str]) -> None:
    assert path_conditions(match_type, value) == expected


@pytest.mark.parametrize(("hosts", "match", "expected"), [
    ((), PathMatch("PathPrefix", "/"), "  use_backend be"),
    (("a.example.com",), PathMatch("Exact", "/x"), "  use_backend be if { req.hdr(host),field(1,:) -i a.example.com }"
                                                   " { path /x }"),
    (("a.example.com", "*.b.org"), PathMatch("PathPrefix", "/"),
     "  use_backend be if { req.hdr(host),field(1,:) -i a.example.com } || "
     "{ req.hdr(host),field(1,:) -i -m end .b.org }"),
])
def test_use_backend_line(hosts: tuple[str, ...], match: PathMatch, expected: str) -> None:
    assert use_backend_line(RoutingEntry(hosts, match, "be")) == expected


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (make debian)")
def test_rendered_config_is_valid_haproxy(tmp_path: Path) -> None:
    plan = _plan((A, C), (), 1, 0)
    routes = (RoutingEntry(("a.example.com", "*.b.org"), PathMatch("PathPrefix", "/api"), "route.app.r.0"),
              RoutingEntry((), PathMatch("Exact", "/x"), "route.app.r.0"))
    plan = DataplanePlan((FrontendPlan("gw.app.web.http", "k", 30080, routes),), plan.backends)
    text = render(realize(plan, 9100), ProcessPaths(str(tmp_path / "admin.sock"), str(tmp_path / "pid")))
    (tmp_path / "haproxy.cfg").write_text(text)
    result = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server svc-a:1 198.18.0.11:8080 weight 1" in text
    assert "server svc-b:1 0.0.0.0:0 disabled weight 0" in text
