"""The Gateway controller stand-in: observe -> translate -> program HAProxy -> write status (thin I/O).

This is a test-side stand-in for a Gateway API implementation (controllerName
``senseops.dev/gateway-standin``), not a product: the decisions live in ``translate.py``,
``haproxy_config.py`` and ``status.py``; this module only lists objects, talks to HAProxy and patches
status. Every reconcile is level-based: it lists everything, computes the whole desired state and
applies the difference, so a missed watch event, a resync or a restart of the controller all converge
to the same result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from senseops_common.storage.file_backend import atomic_write
from tests.gateway import model, status
from tests.gateway.haproxy import HAProxy, HAProxyError
from tests.gateway.haproxy_config import (
    ProxyBackend,
    ProxyConfig,
    ProxyFrontend,
    Server,
    realize,
    render,
    runtime_changes,
)
from tests.gateway.model import GATEWAY_GROUP, ObjectKey, Observation, PathMatch
from tests.gateway.translate import RoutingEntry, Translation, listener_keys, translate

log = logging.getLogger("gateway-standin")
GATEWAY_VERSION = "v1"
METRICS_KEY = "metrics"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one rename (the store's ``atomic_write``): a controller killed mid-write leaves the old
    file, never half a new one (a truncated ``applied.json`` would make the next controller reload an HAProxy
    it should adopt)."""
    atomic_write(path, lambda handle: handle.write(text.encode()))


def _config_to_json(cfg: ProxyConfig) -> str:
    return json.dumps(asdict(cfg), indent=1)


def _config_from_json(text: str) -> ProxyConfig:
    raw = json.loads(text)
    frontends = tuple(
        ProxyFrontend(f["name"], f["port"], tuple(
            RoutingEntry(tuple(e["hostnames"]), PathMatch(e["match"]["type"], e["match"]["value"]), e["backend"])
            for e in f["entries"]))
        for f in raw["frontends"])
    backends = tuple(ProxyBackend(b["name"], tuple(Server(**s) for s in b["servers"])) for b in raw["backends"])
    return ProxyConfig(frontends, backends, raw["metrics_port"])


class GatewayStandin:
    """Watches the API server and keeps one HAProxy programmed (see the module docstring)."""

    def __init__(self, state_dir: Path, kubeconfig: str | None = None, resync_s: float = 30.0) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.networking = client.NetworkingV1Api(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.proxy = HAProxy(state_dir)
        self.resync_s = resync_s
        self.dirty = threading.Event()
        self.stopping = threading.Event()
        self._ports_path = state_dir / "ports.json"
        self._applied_path = state_dir / "applied.json"
        self.ports: dict[str, int] = json.loads(self._ports_path.read_text()) if self._ports_path.exists() else {}
        self.applied: ProxyConfig | None = None
        master = self.proxy.master_pid()
        if master is not None and self._applied_path.exists():
            # An HAProxy left running by an earlier controller: adopt what it was told last, so an unchanged
            # world needs no reload and endpoints keep their slots. Alive means the master process (pid file and
            # /proc), not an answer on the admin socket, which a busy worker may give late.
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.applied = _config_from_json(self._applied_path.read_text())
            log.info("adopting HAProxy (master pid %d): %s", master,
                     "its last configuration" if self.applied is not None else "unreadable applied.json, will reload")

    # --- observe -------------------------------------------------------------------------------

    def _list_custom(self, plural: str) -> list[dict[str, Any]]:
        try:
            items = self.custom.list_cluster_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, plural)["items"]
        except ApiException as err:
            if err.status == 404:
                raise RuntimeError("the Gateway API CRDs are not installed: run `make gateway-crds`") from err
            raise
        return list(items)

    def _list_core(self, fn: Callable[..., Any]) -> list[dict[str, Any]]:
        # Raw JSON, not the client's models: those refuse valid objects (an EndpointSlice of a Service scaled to
        # zero has `endpoints: null`, which V1EndpointSlice rejects with a ValueError).
        items = json.loads(fn(_preload_content=False).data).get("items") or []
        return list(items)

    def observe(self) -> Observation:
        return Observation(
            gateway_classes=tuple(model.parse_gateway_class(o) for o in self._list_custom("gatewayclasses")),
            gateways=tuple(model.parse_gateway(o) for o in self._list_custom("gateways")),
            routes=tuple(model.parse_http_route(o) for o in self._list_custom("httproutes")),
            ingresses=tuple(model.parse_ingress(o)
                            for o in self._list_core(self.networking.list_ingress_for_all_namespaces)),
            services=tuple(model.parse_service(o) for o in self._list_core(self.core.list_service_for_all_namespaces)),
            slices=tuple(model.parse_endpoint_slice(o)
                         for o in self._list_core(self.discovery.list_endpoint_slice_for_all_namespaces)),
        )

    # --- act -----------------------------------------------------------------------------------

    def _allocate_ports(self, keys: Iterable[str]) -> None:
        missing = [k for k in (METRICS_KEY, *keys) if k not in self.ports]
        if missing:
            for key in missing:
                self.ports[key] = free_port()
            _write_atomically(self._ports_path, json.dumps(self.ports, indent=1, sort_keys=True))

    def program(self, new: ProxyConfig) -> str:
        """Make HAProxy serve ``new``; returns how ("runtime: N commands", "reload", "start", "unchanged")."""
        text = render(new, self.proxy.paths)
        if self.proxy.master_pid() is None:  # a master that is alive is reloaded or told, never started twice
            self.proxy.start(text)
            how = "start"
        else:
            commands = runtime_changes(self.applied, new) if self.applied is not None else None
            if commands is None:
                self.proxy.reload(text)
                how = "reload"
            elif commands:
                self.proxy.apply(commands)
                self.proxy.write_config(text)
                how = f"runtime: {len(commands)} commands"
            else:
                how = "unchanged"
        if new != self.applied or not self._applied_path.exists():
            _write_atomically(self._applied_path, _config_to_json(new))
        self.applied = new
        return how

    def reconcile(self) -> Translation:
        obs = self.observe()
        self._allocate_ports(listener_keys(obs))
        result = translate(obs, self.ports)
        new = realize(result.plan, self.ports[METRICS_KEY], self.applied)
        try:
            how = self.program(new)
        except (HAProxyError, OSError) as err:
            log.error("programming HAProxy failed: %s", err)
            result = translate(obs, self.ports, proxy_ok=False, proxy_message=f"HAProxy: {err}"[:1000])
        else:
            if how != "unchanged":
                log.info("HAProxy programmed (%s): %d frontends, %d backends", how, len(new.frontends),
                         len(new.backends))
        self.write_status(result)
        return result

    def write_status(self, result: Translation) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for klass in result.classes:
            self._patch_custom(ObjectKey("", klass.name), "gatewayclasses",
                               partial(status.class_status, intent=klass, now=now))
        for gateway in result.gateways:
            self._patch_custom(gateway.key, "gateways", partial(status.gateway_status, intent=gateway, now=now))
        for route in result.routes:
            self._patch_custom(route.key, "httproutes", partial(status.route_status, intent=route, now=now))
        for ingress in result.ingresses:
            try:
                current = self.networking.read_namespaced_ingress_status(ingress.key.name, ingress.key.namespace)
                body = status.ingress_status(self.api.sanitize_for_serialization(current.status) or {}, ingress)
                if body is not None:
                    self.networking.patch_namespaced_ingress_status(ingress.key.name, ingress.key.namespace,
                                                                    {"status": body})
            except ApiException as err:
                if err.status != 404:
                    raise

    def _patch_custom(self, key: ObjectKey, plural: str,
                      build: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        try:
            if key.namespace:
                current = self.custom.get_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, key.namespace,
                                                                   plural, key.name)
            else:
                current = self.custom.get_cluster_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, plural, key.name)
            body = build(current.get("status") or {})
            if body is None:
                return
            if key.namespace:
                self.custom.patch_namespaced_custom_object_status(GATEWAY_GROUP, GATEWAY_VERSION, key.namespace,
                                                                  plural, key.name, {"status": body})
            else:
                self.custom.patch_cluster_custom_object_status(GATEWAY_GROUP, GATEWAY_VERSION, plural, key.name,
                                                               {"status": body})
        except ApiException as err:
            if err.status != 404:  # deleted meanwhile: nothing to report
                raise

    # --- watch loop ----------------------------------------------------------------------------

    def _watch(self, name: str, list_fn: Callable[..., Any], *args: str) -> None:
        """Mark the state dirty on every event of one kind; reconnects forever (the resync covers any gap)."""
        while not self.stopping.is_set():
            try:
                # return_type "object": events stay plain dicts (see _list_core for why not the models).
                for _ in watch.Watch(return_type="object").stream(list_fn, *args,
                                                                  timeout_seconds=max(5, int(self.resync_s))):
                    self.dirty.set()
                    if self.stopping.is_set():
                        return
            except Exception as err:  # any failure: wait a moment and watch again
                log.debug("watch %s: %s", name, err)
                self.stopping.wait(1.0)

    def run(self) -> None:
        """Reconcile on every change and at least every ``resync_s`` seconds until :meth:`stop`."""
        watches: list[tuple[str, Callable[..., Any], tuple[str, ...]]] = [
            (plural, self.custom.list_cluster_custom_object, (GATEWAY_GROUP, GATEWAY_VERSION, plural))
            for plural in ("gatewayclasses", "gateways", "httproutes")
        ] + [
            ("ingresses", self.networking.list_ingress_for_all_namespaces, ()),
            ("services", self.core.list_service_for_all_namespaces, ()),
            ("endpointslices", self.discovery.list_endpoint_slice_for_all_namespaces, ()),
        ]
        for name, fn, args in watches:
            threading.Thread(target=self._watch, args=(name, fn, *args), daemon=True, name=f"watch-{name}").start()
        while not self.stopping.is_set():
            self.dirty.clear()
            try:
                self.reconcile()
            except Exception as err:  # log, then retry soon; the loop must not die
                log.exception("reconcile failed: %s", err)
                self.stopping.wait(1.0)
                self.dirty.set()
            self.dirty.wait(self.resync_s)
            time.sleep(0.02)  # let a burst of events land in one reconcile

    def stop(self) -> None:
        self.stopping.set()
        self.dirty.set()
