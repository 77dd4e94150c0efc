"""A data-plane plan -> HAProxy configuration, and old -> new as runtime-API commands (pure).

Endpoints live in **slots**: each Service group of a backend gets a fixed number of servers named
``<label>:<n>`` (4, or the next power of two above its endpoint count). A ready endpoint occupies a slot;
a free slot is a server in maintenance at ``0.0.0.0:0``. So when only endpoints or weights change the
server list stays the same and the change goes through the runtime API without a reload:

1. fill new slots first (``set server addr``, ``set weight``, ``set server state ready``),
2. then change weights of servers that stay,
3. then put slots that lost their endpoint into maintenance (``set weight 0``, ``state maint``), which
   sends no new request there but lets requests already on it finish.

Established connections are never reset by a change: weights and maintenance apply to new connections only
(no ``on-marked-down shutdown-sessions``, no ``shutdown sessions``), and a reload's old worker keeps serving
its connections until they close (``hard-stop-after`` only bounds it). So a WebSocket stream stays on the
pod it started on for its whole life; when that pod drains, the runtime closes it with 1012 and the
client's reconnect is balanced with the new weights.

A new or removed frontend, backend or slot (more endpoints than slots) changes the server list and
needs a reload; the controller then does a seamless master-worker reload (listening sockets handed
to the new worker, the old one finishes its requests). An endpoint keeps its slot for as long as it
stays ready, so server names (and their per-server metrics) follow the pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tests.gateway.translate import DataplanePlan, RoutingEntry, Target

MIN_SLOTS = 4
OLD_WORKER_MAX_LIFETIME = "1h"
NO_ROUTE_BACKEND = "senseops.no-route"
EMPTY_ADDRESS = "0.0.0.0"

# Timeouts: connect fails fast so a dead endpoint costs little; `tunnel` keeps WebSockets (and any
# upgraded connection) open for an hour of silence; `http-keep-alive` is below the backends' idle timeout.
DEFAULTS = """\
defaults
  mode http
  log global
  option dontlognull
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout http-keep-alive 10s
  timeout tunnel 1h
  timeout client-fin 5s
  # Retry only when the connection to a server could not be made: the request was never sent, so this
  # is safe for any method. A retry goes to another server (redispatch). No retry on timeouts or on
  # empty responses, which may follow a request the server already acted on.
  retries 2
  retry-on conn-failure
  option redispatch 1
  # On a reload the old worker would close idle keep-alive client connections at once, racing a client
  # that is sending its next request on one ("server disconnected without a response"). With this it
  # waits for that request, answers it with `Connection: close`, then closes.
  option idle-close-on-response
"""


@dataclass(frozen=True)
class Server:
    name: str
    address: str | None  # None: a free slot (in maintenance)
    port: int
    weight: int


@dataclass(frozen=True)
class ProxyBackend:
    name: str
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class ProxyFrontend:
    name: str
    port: int
    entries: tuple[RoutingEntry, ...]


@dataclass(frozen=True)
class ProxyConfig:
    """Everything the HAProxy configuration says, with slots assigned."""

    frontends: tuple[ProxyFrontend, ...]
    backends: tuple[ProxyBackend, ...]
    metrics_port: int

    def backend(self, name: str) -> ProxyBackend | None:
        return next((b for b in self.backends if b.name == name), None)


@dataclass(frozen=True)
class ProcessPaths:
    """Where the running HAProxy keeps its runtime socket and pid file."""

    admin_socket: str
    pidfile: str


def slot_capacity(count: int, previous: int = 0) -> int:
    """Slots for ``count`` endpoints: never fewer than before (so no reload), at least MIN_SLOTS, powers of two."""
    capacity = max(MIN_SLOTS, previous)
    while capacity < count:
        capacity *= 2
    return capacity


def assign_slots(previous: Sequence[Target | None], targets: Sequence[Target]) -> tuple[Target | None, ...]:
    """Place ``targets`` in slots: an endpoint already in a slot keeps it; new ones take the lowest slots that
    were already free. A slot vacated by this same change is not reused until the next one (the swap would
    leave a moment with the old endpoint gone and the new one not yet enabled); when free slots run out,
    the capacity doubles (and the controller reloads).
    """
    wanted = set(targets)
    slots: list[Target | None] = [t if t in wanted else None for t in previous]
    new = sorted(wanted - {t for t in slots if t is not None})
    free = [i for i, t in enumerate(previous) if t is None]
    capacity = slot_capacity(len(previous) - len(free) + len(new), len(previous))
    slots.extend([None] * (capacity - len(slots)))
    free += range(len(previous), capacity)
    for index, target in zip(free, new, strict=False):
        slots[index] = target
    return tuple(slots)


def _previous_slots(previous: ProxyBackend | None, label: str) -> list[Target | None]:
    if previous is None:
        return []
    prefix = f"{label}:"
    out: list[Target | None] = []
    for server in previous.servers:
        if server.name.startswith(prefix) and server.name[len(prefix):].isdigit():
            out.append(Target(server.address, server.port) if server.address is not None else None)
    return out


def realize(plan: DataplanePlan, metrics_port: int, previous: ProxyConfig | None = None) -> ProxyConfig:
    """Assign every endpoint of ``plan`` to a server slot, keeping the slots of ``previous`` where possible."""
    backends = []
    for backend in plan.backends:
        before = previous.backend(backend.name) if previous else None
        servers = []
        for group in backend.groups:
            slots = assign_slots(_previous_slots(before, group.label), group.targets)
            for index, target in enumerate(slots, start=1):
                name = f"{group.label}:{index}"
                if target is None:
                    servers.append(Server(name, None, 0, 0))
                else:
                    servers.append(Server(name, target.address, target.port, group.server_weight))
        backends.append(ProxyBackend(backend.name, tuple(servers)))
    frontends = tuple(ProxyFrontend(f.name, f.port, f.entries) for f in plan.frontends)
    return ProxyConfig(frontends, tuple(backends), metrics_port)


# --- rendering -----------------------------------------------------------------------------------


def host_conditions(hostnames: Sequence[str]) -> list[str]:
    """HAProxy conditions on the Host header (port stripped), any of which matches; none for "any host"."""
    exact = [h for h in hostnames if not h.startswith("*.")]
    wildcard = [h[1:] for h in hostnames if h.startswith("*.")]
    out = []
    if exact:
        out.append("{ req.hdr(host),field(1,:) -i " + " ".join(exact) + " }")
    if wildcard:
        out.append("{ req.hdr(host),field(1,:) -i -m end " + " ".join(wildcard) + " }")
    return out


def path_conditions(match_type: str, value: str) -> list[str]:
    """HAProxy conditions on the path, any of which matches; none for "every path". PathPrefix matches whole
    path elements: "/a" matches "/a" and "/a/b" but not "/ab"."""
    if match_type == "Exact":
        return [f"{{ path {value} }}"]
    prefix = value.rstrip("/")
    if not prefix:
        return []
    return [f"{{ path {prefix} }}", f"{{ path_beg {prefix}/ }}"]


def use_backend_line(entry: RoutingEntry) -> str:
    """(any host condition) AND (any path condition); HAProxy has no parentheses, so OR-ed conjunctions."""
    terms = [f"{h} {p}".strip() for h in host_conditions(entry.hostnames) or [""]
             for p in path_conditions(entry.match.type, entry.match.value) or [""]]
    condition = " || ".join(t for t in terms if t)
    return f"  use_backend {entry.backend}" + (f" if {condition}" if condition else "")


def render(config: ProxyConfig, paths: ProcessPaths) -> str:
    """The complete haproxy.cfg for ``config``."""
    lines = [
        "# Written by the SenseOps Gateway controller stand-in (tests/gateway); changes are overwritten.",
        "global",
        "  master-worker",
        f"  pidfile {paths.pidfile}",
        # expose-fd listeners: a reload hands the listening sockets to the new worker (no refused connection).
        f"  stats socket {paths.admin_socket} mode 600 level admin expose-fd listeners",
        "  stats timeout 30s",
        # A reload's old worker keeps the connections it holds — WebSocket streams above all — until they
        # end: a stream stays on the server (and model version) it started on, and weight changes apply to
        # new connections only. This bounds how long an old worker may linger; it is the tunnel timeout.
        f"  hard-stop-after {OLD_WORKER_MAX_LIFETIME}",
        "  log stderr format short local0 notice",
        "",
        DEFAULTS,
        "frontend senseops.metrics",
        f"  bind 127.0.0.1:{config.metrics_port}",
        "  http-request use-service prometheus-exporter if { path /metrics }",
        "  http-request return status 404 content-type text/plain string not-found",
        "",
    ]
    for frontend in config.frontends:
        lines += [f"frontend {frontend.name}", f"  bind 127.0.0.1:{frontend.port}"]
        lines += [use_backend_line(entry) for entry in frontend.entries]
        lines += [f"  default_backend {NO_ROUTE_BACKEND}", ""]
    lines += [f"backend {NO_ROUTE_BACKEND}",
              "  http-request return status 404 content-type text/plain string no-route-matches", ""]
    for backend in config.backends:
        lines += [f"backend {backend.name}", "  balance roundrobin"]
        for server in backend.servers:
            if server.address is None:
                lines.append(f"  server {server.name} {EMPTY_ADDRESS}:0 disabled weight 0")
            else:
                lines.append(f"  server {server.name} {server.address}:{server.port} weight {server.weight}")
        lines.append("")
    return "\n".join(lines)


# --- runtime changes -----------------------------------------------------------------------------


def _shape(config: ProxyConfig) -> tuple[object, ...]:
    return (config.metrics_port, config.frontends,
            tuple((b.name, tuple(s.name for s in b.servers)) for b in config.backends))


def runtime_changes(old: ProxyConfig, new: ProxyConfig) -> list[str] | None:
    """Runtime-API commands that turn ``old`` into ``new``, or None when only a reload can (see module doc)."""
    if _shape(old) != _shape(new):
        return None
    fill: list[str] = []
    reweigh: list[str] = []
    vacate: list[str] = []
    for before, after in zip(old.backends, new.backends, strict=True):
        servers_before: Mapping[str, Server] = {s.name: s for s in before.servers}
        for server in after.servers:
            prior = servers_before[server.name]
            if prior == server:
                continue
            ref = f"{after.name}/{server.name}"
            if server.address is None:
                vacate += [f"set weight {ref} 0", f"set server {ref} state maint"]
            elif prior.address is None:
                fill += [f"set server {ref} addr {server.address} port {server.port}",
                         f"set weight {ref} {server.weight}", f"set server {ref} state ready"]
            elif (prior.address, prior.port) != (server.address, server.port):
                return None  # assign_slots never swaps an occupied slot; a reload is the safe answer if asked to
            else:
                reweigh.append(f"set weight {ref} {server.weight}")
    return fill + reweigh + vacate


def weights_of(config: ProxyConfig) -> dict[str, int]:
    """``backend/server`` -> weight for every occupied slot (what `get weight` must report once applied)."""
    return {f"{b.name}/{s.name}": s.weight for b in config.backends for s in b.servers if s.address is not None}
