"""Pure decisions of the process node (a kubelet stand-in): how a pod's containers become host
commands, what their environment is, how volumes are mounted, when to restart, and what the pod's
status says. No I/O here; ``node.py`` does the work around these functions.

**Images are not pulled for containers**: every container runs from the project's own environment.
The rule, by image repository (registry and tag/digest ignored):

| image repository ends with | entrypoint when the container gives no ``command`` |
| --- | --- |
| ``senseops/runtime``, ``senseops/runtime-cuda`` | ``python -m senseops_runtime`` |
| ``senseops/trainer`` | ``python -m senseops_trainer`` |
| ``senseops/operator`` | ``python -m senseops_operator`` |
| ``crane`` (e.g. ``gcr.io/go-containerregistry/crane``) | ``crane`` (built by ``make bins``) |
| ``busybox``, ``debian``, ``python`` and anything else | none: the container must give ``command`` |

A ``command``/``args`` program named ``python``/``python3`` is the project's virtualenv Python; other
programs are looked up on ``PATH`` = virtualenv ``bin`` + the Go-built binaries + the system's.
Image *volumes* (``volumes[].image``), on the other hand, really are pulled from the registry.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IMAGE_ENTRYPOINTS: dict[str, list[str]] = {
    "senseops/runtime": ["python", "-m", "senseops_runtime"],
    "senseops/runtime-cuda": ["python", "-m", "senseops_runtime"],
    "senseops/trainer": ["python", "-m", "senseops_trainer"],
    "senseops/operator": ["python", "-m", "senseops_operator"],
    "crane": ["crane"],
}
PYTHON_NAMES = ("python", "python3")
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
KUBERNETES_SERVICE_IP = "10.96.0.1"
# The kubelet's crash-loop back-off: 10 s doubling up to 5 min, reset after 10 min of running.
BACKOFF_BASE_S = 10.0
BACKOFF_MAX_S = 300.0
BACKOFF_RESET_S = 600.0


class PodSpecError(ValueError):
    """A pod this node cannot run as asked; the message goes into the container's waiting reason."""


def image_repository(image: str) -> str:
    """``reg:5000/senseops/runtime:v1@sha256:..`` -> ``reg:5000/senseops/runtime``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rindex(":")]
    return name


def image_entrypoint(image: str) -> list[str] | None:
    """The documented entrypoint for ``image`` (see the module table), or None."""
    repo = image_repository(image)
    for suffix, entrypoint in IMAGE_ENTRYPOINTS.items():
        if repo == suffix or repo.endswith("/" + suffix):
            return list(entrypoint)
    return None


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, unknown ones stay, ``$$`` -> ``$``."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(sub, text)


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """Program and arguments for a container, before the ``python`` / PATH resolution."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = list(command) + list(args or [])
    else:
        entrypoint = image_entrypoint(container.get("image", ""))
        if entrypoint is None:
            raise PodSpecError(
                f"image {container.get('image')!r} has no entrypoint known to the process node; give the "
                f"container a command (see tests/procnode/spec.py for the image table)")
        argv = entrypoint + list(args or [])
    return [expand(part, env) for part in argv]


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number (``500m`` -> 0.5, ``2Gi`` -> 2147483648)."""
    text = str(value)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
                "E": 1e18}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def resource_field_value(container: Mapping[str, Any], resource: str, divisor: str | None) -> str:
    """``resourceFieldRef``: limits fall back to requests, as the kubelet does for an unlimited node."""
    kind, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "limits":
        raw = (resources.get("requests") or {}).get(name)
    if raw is None:
        raw = "0"
    value = quantity(raw) / quantity(divisor or "1")
    # The kubelet rounds up to a whole number of divisors (cpu 250m with divisor 1 -> 1).
    whole = int(value) if value == int(value) else int(value) + 1
    return str(whole)


def field_ref_value(pod: Mapping[str, Any], field_path: str, pod_ip: str, host_ip: str) -> str:
    """``fieldRef`` for the paths the kubelet supports."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if field_path in simple:
        return str(simple[field_path])
    found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if found:
        return str((meta.get(found.group(1)) or {}).get(found.group(2), ""))
    raise PodSpecError(f"fieldRef {field_path!r} is not supported")


@dataclass(frozen=True)
class EnvSource:
    """What the node looked up for a pod: its ConfigMaps and Secrets (decoded), by name."""

    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def _key_ref(kind: str, ref: Mapping[str, Any], source: EnvSource) -> str | None:
    objects = source.config_maps if kind == "configMap" else source.secrets
    data = objects.get(ref.get("name", ""))
    if data is None or ref.get("key") not in data:
        if ref.get("optional"):
            return None
        raise PodSpecError(f"{kind} {ref.get('name')!r} key {ref.get('key')!r} not found")
    return data[ref["key"]]


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], source: EnvSource, pod_ip: str,
                  host_ip: str, base: Mapping[str, str]) -> dict[str, str]:
    """The container's environment: ``base`` (node-provided), Service variables, ``envFrom``, ``env``.

    Later entries win; ``$(VAR)`` in a value refers to variables defined before it, as in Kubernetes.
    """
    env: dict[str, str] = dict(base)
    env["HOSTNAME"] = (pod.get("metadata") or {}).get("name", "")
    env["KUBERNETES_SERVICE_HOST"] = KUBERNETES_SERVICE_IP
    env["KUBERNETES_SERVICE_PORT"] = "443"
    env["KUBERNETES_SERVICE_PORT_HTTPS"] = "443"
    for item in container.get("envFrom") or []:
        prefix = item.get("prefix", "")
        if "configMapRef" in item:
            ref, data = item["configMapRef"], source.config_maps.get(item["configMapRef"].get("name", ""))
        else:
            ref, data = item.get("secretRef") or {}, source.secrets.get((item.get("secretRef") or {}).get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise PodSpecError(f"envFrom {ref.get('name')!r} not found")
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        value_from = var.get("valueFrom") or {}
        value: str | None
        if "fieldRef" in value_from:
            value = field_ref_value(pod, value_from["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in value_from:
            ref = value_from["resourceFieldRef"]
            target = container
            if ref.get("containerName"):
                target = next((c for c in (pod.get("spec") or {}).get("containers", [])
                               if c.get("name") == ref["containerName"]), container)
            value = resource_field_value(target, ref["resource"], ref.get("divisor"))
        elif "configMapKeyRef" in value_from:
            value = _key_ref("configMap", value_from["configMapKeyRef"], source)
        elif "secretKeyRef" in value_from:
            value = _key_ref("secret", value_from["secretKeyRef"], source)
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


@dataclass(frozen=True)
class Mount:
    """One bind mount inside a container's private mount namespace."""

    source: str
    target: str
    read_only: bool


def _within(path: str, folder: str) -> bool:
    p, f = path.rstrip("/") or "/", folder.rstrip("/") or "/"
    return f == "/" or p == f or p.startswith(f + "/")


def forbidden_mount_target(target: str, protected: Sequence[str]) -> bool:
    """A mount at ``target`` would replace the whole file system, or exactly one of ``protected`` (the
    project, its virtualenv, the node's state, the Go-built binaries)."""
    norm = target.rstrip("/") or "/"
    return norm == "/" or any((p.rstrip("/") or "/") == norm for p in protected)


def hidden_by(mounts: Sequence[Mount], protected: Sequence[str]) -> list[str]:
    """Protected paths that lie below a mount target (e.g. a checkout under /tmp when a pod mounts /tmp):
    the launcher binds them back over the mount, so the container still finds the project's files."""
    return [p for p in protected if any(_within(p, m.target) for m in mounts)]


def container_mounts(container: Mapping[str, Any], volume_dirs: Mapping[str, str],
                     read_only_volumes: set[str], protected: Sequence[str]) -> list[Mount]:
    """Bind mounts for ``volumeMounts``, with ``subPath``; image volumes are always read-only."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        name = vm["name"]
        if name not in volume_dirs:
            raise PodSpecError(f"volumeMount {name!r} names no volume of the pod")
        target = vm["mountPath"]
        if forbidden_mount_target(target, protected):
            raise PodSpecError(f"mountPath {target!r} would hide the process node's own files")
        source = volume_dirs[name]
        if vm.get("subPath"):
            sub = vm["subPath"]
            if sub.startswith("/") or ".." in sub.split("/"):
                raise PodSpecError(f"subPath {sub!r} must be a relative path inside the volume")
            source = f"{source}/{sub}"
        mounts.append(Mount(source, target, bool(vm.get("readOnly")) or name in read_only_volumes))
    return mounts


STASH_DIR = "/run/senseops-procnode-stash"


CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class HostEntry:
    """One pod's line in the pods' hosts files: its address, host name and (headless Service) subdomain."""

    ip: str
    hostname: str
    subdomain: str | None = None


def pod_hostname(pod: Mapping[str, Any]) -> str | None:
    """The pod's own host name when it asks for one (``spec.hostname``, or its name with a ``subdomain``),
    as for an Indexed Job's pods (``<job>-<index>``); ``None`` leaves the pod with the machine's."""
    spec = pod.get("spec") or {}
    if spec.get("hostname"):
        return str(spec["hostname"])[:63]
    if spec.get("subdomain"):
        return str((pod.get("metadata") or {}).get("name", ""))[:63]
    return None


def hosts_file(namespace: str, own: HostEntry, peers: Sequence[HostEntry]) -> str:
    """``/etc/hosts`` of a pod with a host name: the kubelet's lines (localhost, the pod's own name) plus,
    standing in for cluster DNS, every running pod of the same namespace and subdomain under
    ``<hostname>.<subdomain>`` and its fully qualified name — what a headless Service with that name
    publishes. Peers are written in the order given; the pod itself is never listed twice."""
    lines = ["# Managed by the SenseOps process node (a kubelet stand-in for tests).",
             "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]

    def names(entry: HostEntry) -> str:
        if not entry.subdomain:
            return entry.hostname
        short = f"{entry.hostname}.{entry.subdomain}"
        return f"{short}.{namespace}.svc.{CLUSTER_DOMAIN}\t{short}\t{entry.hostname}"

    lines.append(f"{own.ip}\t{names(own)}")
    for peer in peers:
        if peer.subdomain and peer.subdomain == own.subdomain and peer.ip != own.ip:
            lines.append(f"{peer.ip}\t{names(peer)}")
    return "\n".join(lines) + "\n"


def launch_argv(netns: str, mounts: Sequence[Mount], working_dir: str | None, argv: Sequence[str],
                keep: Sequence[str] = (), hostname: str | None = None, hosts: str | None = None) -> list[str]:
    """The host command that starts a container: into the pod's network namespace, then a private mount
    namespace where the volumes are bind-mounted at their ``mountPath``, then ``exec`` of the program
    (so the container's pid is the one the node started).

    Every volume source, and every path in ``keep`` (host paths a mount would hide, see :func:`hidden_by`),
    is first bound aside onto a private tmpfs, so no mount can hide a later mount's source; the volumes are
    then mounted from there, and the kept paths bound back over them.

    With ``hostname`` the container also gets a UTS namespace with that host name, and ``hosts`` (a file
    the node keeps current, see :func:`hosts_file`) is bound over ``/etc/hosts``.
    """
    q = shlex.quote
    script = ["set -e", f"mkdir -p {STASH_DIR}", f"mount -t tmpfs stash {STASH_DIR}"]
    for i, m in enumerate(mounts):
        # A file volume item (subPath to a file) is mounted over a file; everything else over a folder.
        script.append(f"if [ -d {q(m.source)} ]; then mkdir {STASH_DIR}/v{i}; else touch {STASH_DIR}/v{i}; fi")
        script.append(f"mount --bind {q(m.source)} {STASH_DIR}/v{i}")
    for i, path in enumerate(keep):
        script.append(f"mkdir {STASH_DIR}/k{i}; mount --bind {q(path)} {STASH_DIR}/k{i}")
    for i, m in enumerate(mounts):
        script.append(f"if [ -d {STASH_DIR}/v{i} ]; then mkdir -p {q(m.target)}; "
                      f"else mkdir -p \"$(dirname {q(m.target)})\"; touch {q(m.target)}; fi")
        script.append(f"mount --bind {STASH_DIR}/v{i} {q(m.target)}")
        if m.read_only:
            script.append(f"mount -o remount,bind,ro {q(m.target)}")
    for i, path in enumerate(keep):
        script.append(f"mkdir -p {q(path)}; mount --bind {STASH_DIR}/k{i} {q(path)}")
    if hosts:
        script.append(f"mount --bind {q(hosts)} /etc/hosts")
    if hostname:
        script.append(f"hostname {q(hostname)}")
    if working_dir:
        script.append(f"mkdir -p {q(working_dir)}; cd {q(working_dir)}")
    script.append('exec "$@"')
    uts = ["--uts"] if hostname else []
    return ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", *uts, "--",
            "/bin/sh", "-c", "; ".join(script), "container", *argv]


# The kubelet's termination message: the file at ``terminationMessagePath`` (default below), at most
# 4096 bytes; with ``terminationMessagePolicy: FallbackToLogsOnError`` an empty file after a failure is
# replaced by the log's last 80 lines, at most 2048 bytes.
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


def termination_message_path(container: Mapping[str, Any]) -> str:
    """Where the container writes its termination message."""
    path = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH)
    if not path.startswith("/"):
        raise PodSpecError(f"terminationMessagePath {path!r} must be absolute")
    return path


def termination_message(written: bytes, policy: str | None, exit_code: int, log: bytes) -> str | None:
    """``state.terminated.message`` from what the container wrote to its message file and its log."""
    text = written[:MAX_TERMINATION_MESSAGE_BYTES]
    if not text.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        text = b"\n".join(log.splitlines()[-FALLBACK_LOG_LINES:])[-FALLBACK_LOG_BYTES:]
    message = text.decode(errors="replace")
    return message or None


def restart_delay(restart_count: int, base_s: float = BACKOFF_BASE_S, max_s: float = BACKOFF_MAX_S) -> float:
    """Crash-loop back-off before restart number ``restart_count + 1`` (0 -> base, doubling, capped)."""
    return float(min(max_s, base_s * 2 ** max(0, restart_count)))


def should_restart(policy: str, exit_code: int) -> bool:
    """``restartPolicy`` for a regular container that exited with ``exit_code``."""
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def exit_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def exit_code_of(returncode: int) -> int:
    """Popen's returncode -> a container exit code (killed by signal N -> 128 + N, as runtimes report)."""
    return 128 - returncode if returncode < 0 else returncode


def pod_phase(policy: str, init_failed: bool, exits: Mapping[str, int | None], running: Sequence[str]) -> str:
    """Phase from the regular containers' last exit codes (None: not exited since its last start, or
    never started) and the names of those running now."""
    if init_failed and policy == "Never":
        return "Failed"
    started = bool(running) or any(code is not None for code in exits.values())
    if not started:
        return "Pending"
    if running or any(code is None for code in exits.values()):
        return "Running"
    if all(code == 0 for code in exits.values()):
        return "Running" if policy == "Always" else "Succeeded"
    return "Failed" if policy == "Never" else "Running"


@dataclass
class ProbeState:
    """Counters of one probe (``failureThreshold``/``successThreshold`` semantics)."""

    successes: int = 0
    failures: int = 0
    passed: bool = False

    def record(self, ok: bool, success_threshold: int, failure_threshold: int) -> str | None:
        """Record one result; returns "pass" or "fail" when the probe's verdict flips, else None."""
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.passed and self.successes >= success_threshold:
                self.passed = True
                return "pass"
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= failure_threshold and (self.passed or self.failures == failure_threshold):
                self.passed = False
                return "fail"
        return None


def probe_settings(probe: Mapping[str, Any]) -> dict[str, float]:
    """A probe's timing with Kubernetes' defaults."""
    return {
        "initialDelaySeconds": float(probe.get("initialDelaySeconds", 0)),
        "periodSeconds": float(probe.get("periodSeconds", 10)),
        "timeoutSeconds": float(probe.get("timeoutSeconds", 1)),
        "successThreshold": int(probe.get("successThreshold", 1)),
        "failureThreshold": int(probe.get("failureThreshold", 3)),
    }


def resolve_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe port by number or by the container port's name."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise PodSpecError(f"probe port {port!r} is not a port of container {container.get('name')!r}")
