"""The process node: a **kubelet stand-in** for tests that runs the pods bound to it as host processes.

It registers its own Node (labels, a taint that keeps ordinary pods away, capacity with
``nvidia.com/gpu`` so GPU Jobs schedule — nothing uses a GPU), renews its Lease, and for every pod
bound to it: gives it a network namespace with a pod address from 198.18.0.0/15 (``podnet.py``),
materialises its volumes, runs init containers in order and then the containers as processes,
runs their probes, restarts them per ``restartPolicy`` with the kubelet's back-off, and reports real
exit codes in ``pods/status``. On deletion it sends SIGTERM, waits the grace period, sends SIGKILL
and removes the pod. The decisions live in ``spec.py``; this module does the I/O.

What it does **not** do (it is a stand-in): enforce resource limits, users/capabilities
(``securityContext``), preStop hooks, ``kubectl logs``/``exec`` (container logs are files under the
node's state folder), pod-to-pod traffic, or Services' ClusterIPs (only the API server's Service
address is served inside pods, through the loopback bridge).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.procnode import spec as s
from tests.procnode.podnet import LoopbackBridge, PodNetwork, PodSandbox
from tests.procnode.procs import kill_recorded, proc_start_time

log = logging.getLogger("procnode")
REPO = Path(__file__).resolve().parents[2]
NODE_LABEL = "senseops.dev/process-node"
TAINT = {"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4", "ephemeral-storage": "100Gi"}
LEASE_S = 40
HEARTBEAT_S = 10.0
LOOP_S = 0.25


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRun:
    """What the node knows about one container of a pod."""

    spec: dict[str, Any]
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    restart_count: int = 0
    last_exit: int | None = None
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    next_start: float = 0.0
    ready: bool = False
    started: bool = False
    probes: dict[str, s.ProbeState] = field(default_factory=dict)
    probe_due: dict[str, float] = field(default_factory=dict)
    done: bool = False  # an init container that succeeded, or a container that will not run again

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class PodWorker(threading.Thread):
    """Runs one pod from binding to removal."""

    def __init__(self, node: ProcessNode, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(daemon=True, name=f"pod-{meta['namespace']}/{meta['name']}")
        self.node = node
        self.pod = pod
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.dir = node.state_dir / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid[:8]}"
        self.sandbox: PodSandbox | None = None
        self.bridge: LoopbackBridge | None = None
        self.inits = [ContainerRun(c, init=True) for c in pod["spec"].get("initContainers") or []]
        self.containers = [ContainerRun(c) for c in pod["spec"]["containers"]]
        self.policy: str = pod["spec"].get("restartPolicy", "Always")
        self.terminate_at: float | None = None
        self.grace_s = 30.0
        self.gone = threading.Event()  # the pod object was deleted: stop without API calls
        self.start_time = now_iso()
        self.error: str | None = None
        self.init_failed = False
        self.launch: dict[str, list[str]] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self._last_status: dict[str, Any] | None = None
        self._last_sent: dict[str, Any] | None = None
        self.hostname: str | None = None  # set for pods with spec.hostname / spec.subdomain
        self.network_released = False
        self.hosts_path = self.dir / "hosts"

    def host_entry(self) -> s.HostEntry | None:
        """This pod's line in its peers' hosts files while its network exists."""
        if self.hostname is None or self.sandbox is None or self.network_released:
            return None
        return s.HostEntry(self.sandbox.ip, self.hostname, self.pod["spec"].get("subdomain"))

    # --- requests from the watch ---------------------------------------------------------------
    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and self.terminate_at is None:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            self.grace_s = float(grace)
            self.terminate_at = time.monotonic()

    # --- main loop -------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._prepare()
        except Exception as err:  # any set-up failure is the pod's, shown in its status
            log.exception("pod %s/%s: set-up failed", self.namespace, self.pod_name)
            self.error = f"{type(err).__name__}: {err}"
            for c in self.inits + self.containers:
                c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": self.error[:800]}}
        try:
            while not self.gone.is_set():
                if self.terminate_at is not None:
                    self._terminate()
                    break
                if self.error is None:
                    self._step()
                self._publish()
                if self._finished():
                    self._publish()
                    self._wait_for_deletion()
                    break
                time.sleep(LOOP_S)
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.pod_name)
        finally:
            self._kill_all(signal.SIGKILL)
            self._cleanup()
            self.node.forget(self.uid)

    def _finished(self) -> bool:
        return self._phase() in ("Succeeded", "Failed")

    def _wait_for_deletion(self) -> None:
        """A finished pod keeps its status until someone deletes it (the Job controller, a user)."""
        self._release_network()
        while not self.gone.is_set() and self.terminate_at is None:
            time.sleep(LOOP_S)
        if self.terminate_at is not None and not self.gone.is_set():
            self._delete_pod()

    # --- preparation -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self.sandbox = self.node.network.create_sandbox()
        self.bridge = LoopbackBridge(self.sandbox)
        for ns_address, ns_port, host_port in self.node.bridge_routes():
            self.bridge.add(ns_address, ns_port, host_port)
        self._publish()  # the pod address is known from here on
        self.hostname = s.pod_hostname(self.pod)
        if self.hostname is not None:
            self.hosts_path.write_text("")
            self.node.refresh_hosts(self.namespace)  # this pod's file, and its peers learn its address
        volume_dirs, read_only = self.node.volumes.materialise(self.pod, self.dir / "volumes")
        source = self.node.env_source(self.pod)
        protected = [str(REPO), str(Path(sys.prefix).resolve()), str(self.node.state_dir.resolve()),
                     str(self.node.bin_dir)]
        for c in self.inits + self.containers:
            env = s.container_env(self.pod, c.spec, source, self.sandbox.ip, self.sandbox.host_ip,
                                  self.node.base_env())
            argv = self.node.resolve_program(s.container_argv(c.spec, env), env)
            mounts = s.container_mounts(c.spec, volume_dirs, read_only, protected)
            # The termination message file: one per container, bound over terminationMessagePath.
            message_file = self._message_file(c)
            message_file.parent.mkdir(exist_ok=True)
            message_file.write_bytes(b"")
            mounts.append(s.Mount(str(message_file), s.termination_message_path(c.spec), False))
            self.launch[c.name] = s.launch_argv(
                self.sandbox.netns, mounts, c.spec.get("workingDir"), argv, keep=s.hidden_by(mounts, protected),
                hostname=self.hostname, hosts=str(self.hosts_path) if self.hostname is not None else None)
            self.envs[c.name] = env

    # --- one pass ----------------------------------------------------------------------------------
    def _step(self) -> None:
        now = time.monotonic()
        pending_init = next((c for c in self.inits if not c.done), None)
        if pending_init is not None:
            self._drive(pending_init, now)
            return
        for c in self.containers:
            self._drive(c, now)
            if c.running():
                self._probe(c, now)

    def _drive(self, c: ContainerRun, now: float) -> None:
        """Start, notice the exit of, and restart one container."""
        if c.done:
            return
        if c.proc is not None and c.proc.poll() is not None:
            code = s.exit_code_of(c.proc.returncode)
            self._record_exit(c, code, self._termination_message(c, code))
        if c.proc is None and now >= c.next_start:
            if c.last_exit is not None and not (self._restartable(c)):
                c.done = True
                return
            self._start(c)

    def _restartable(self, c: ContainerRun) -> bool:
        if c.init:
            return c.last_exit != 0 and self.policy != "Never"
        return s.should_restart(self.policy, c.last_exit or 0)

    def _message_file(self, c: ContainerRun) -> Path:
        return self.dir / "termination" / c.name

    def _termination_message(self, c: ContainerRun, code: int) -> str | None:
        """What the container left at its terminationMessagePath (or its log's tail, by policy)."""
        try:
            written = self._message_file(c).read_bytes()
        except OSError:
            written = b""
        log_tail = b""
        if c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and code != 0:
            with contextlib.suppress(OSError):
                log_tail = (self.dir / "logs" / f"{c.name}.log").read_bytes()[-64 * 1024:]
        return s.termination_message(written, c.spec.get("terminationMessagePolicy"), code, log_tail)

    def _start(self, c: ContainerRun) -> None:
        with contextlib.suppress(OSError):  # each run starts with an empty message, as with a kubelet
            self._message_file(c).write_bytes(b"")
        log_path = self.dir / "logs" / f"{c.name}.log"
        with log_path.open("ab") as out:
            program = self.launch[c.name][self.launch[c.name].index("container") + 1:]
            out.write(f"=== {now_iso()} start #{c.restart_count}: {' '.join(program)}\n".encode())
            out.flush()
            c.proc = subprocess.Popen(self.launch[c.name], env=self.envs[c.name], stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
        record = self.node.state_dir / "containers" / f"{self.uid}_{c.name}.json"
        record.write_text(json.dumps({"pid": c.proc.pid, "start": proc_start_time(c.proc.pid)}))
        c.started_at = now_iso()
        c.started_mono = time.monotonic()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = False
        c.started = not c.spec.get("startupProbe")
        c.probes = {kind: s.ProbeState() for kind in ("startupProbe", "readinessProbe", "livenessProbe")
                    if c.spec.get(kind)}
        c.probe_due = {kind: c.started_mono + s.probe_settings(c.spec[kind])["initialDelaySeconds"]
                       for kind in c.probes}
        if not c.spec.get("readinessProbe") and not c.init:
            c.ready = c.started

    def _forget_record(self, c: ContainerRun) -> None:
        with contextlib.suppress(OSError):
            (self.node.state_dir / "containers" / f"{self.uid}_{c.name}.json").unlink()

    def _record_exit(self, c: ContainerRun, code: int, message: str | None = None) -> None:
        terminated: dict[str, Any] = {"exitCode": code, "reason": s.exit_reason(code),
                                      "startedAt": c.started_at, "finishedAt": now_iso(),
                                      "containerID": f"procnode://{c.proc.pid if c.proc else 0}"}
        if message:
            terminated["message"] = message
        c.proc = None
        c.last_exit = code
        c.ready = False
        self._forget_record(c)
        if c.init and code == 0:
            c.done = True
            c.state = {"terminated": terminated}
            return
        if c.init and self.policy == "Never":
            self.init_failed = True
        if self._restartable(c) and self.terminate_at is None:
            ran_for = time.monotonic() - c.started_mono
            if ran_for > s.BACKOFF_RESET_S:
                c.restart_count = 0
            delay = s.restart_delay(c.restart_count, self.node.backoff_base_s)
            c.restart_count += 1
            c.next_start = time.monotonic() + delay
            c.last_state = {"terminated": terminated}
            c.state = {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off {delay:.0f}s restarting failed container={c.name} "
                                              f"pod={self.pod_name}"}}
        else:
            c.state = {"terminated": terminated}
            c.done = True

    # --- probes --------------------------------------------------------------------------------------
    def _probe(self, c: ContainerRun, now: float) -> None:
        order = ["startupProbe"] if not c.started else ["readinessProbe", "livenessProbe"]
        for kind in order:
            if kind not in c.probes or now < c.probe_due[kind]:
                continue
            settings = s.probe_settings(c.spec[kind])
            c.probe_due[kind] = now + settings["periodSeconds"]
            ok = self._run_probe(c, c.spec[kind], settings["timeoutSeconds"])
            threshold_ok = 1 if kind != "readinessProbe" else int(settings["successThreshold"])
            verdict = c.probes[kind].record(ok, threshold_ok, int(settings["failureThreshold"]))
            if kind == "startupProbe" and verdict == "pass":
                c.started = True
                if "readinessProbe" not in c.probes:
                    c.ready = True
                for other in ("readinessProbe", "livenessProbe"):
                    if other in c.probes:
                        c.probe_due[other] = now
            elif kind == "readinessProbe" and verdict is not None:
                c.ready = verdict == "pass"
            elif verdict == "fail":  # startup or liveness failed: the kubelet kills and restarts
                log.info("pod %s/%s container %s: %s failed, restarting", self.namespace, self.pod_name, c.name,
                         kind)
                self._stop_container(c, self.grace_for_kill())
                self._record_exit(c, 137, f"{kind} failed")
                return

    def grace_for_kill(self) -> float:
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    def _run_probe(self, c: ContainerRun, probe: dict[str, Any], timeout_s: float) -> bool:
        assert self.sandbox is not None
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                port = s.resolve_port(c.spec, get["port"])
                scheme = get.get("scheme", "HTTP").lower()
                url = f"{scheme}://{get.get('host') or self.sandbox.ip}:{port}{get.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                    return 200 <= resp.status < 400
            if "tcpSocket" in probe:
                port = s.resolve_port(c.spec, probe["tcpSocket"]["port"])
                with socket.create_connection((self.sandbox.ip, port), timeout=timeout_s):
                    return True
            if "exec" in probe and c.proc is not None:
                cmd = ["nsenter", "-t", str(c.proc.pid), "-n", "-m", "--",
                       *self.node.resolve_program(list(probe["exec"]["command"]), self.envs[c.name])]
                result = subprocess.run(cmd, env=self.envs[c.name], capture_output=True, timeout=max(timeout_s, 1))
                return result.returncode == 0
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired, s.PodSpecError, ValueError):
            return False
        return False

    # --- stopping --------------------------------------------------------------------------------
    def _stop_container(self, c: ContainerRun, grace_s: float) -> None:
        if c.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(c.proc.pid, signal.SIGTERM)
        try:
            c.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()

    def _terminate(self) -> None:
        """Deletion: SIGTERM every running container, wait up to the grace period, SIGKILL, remove."""
        running = [c for c in self.inits + self.containers if c.running()]
        for c in running:
            c.ready = False
        self._publish()
        deadline = time.monotonic() + self.grace_s
        hooks = [threading.Thread(target=self._pre_stop, args=(c, deadline), daemon=True) for c in running]
        for hook in hooks:
            hook.start()
        for hook in hooks:
            hook.join(timeout=max(0.0, deadline - time.monotonic()))
        for c in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        while time.monotonic() < deadline and any(c.running() for c in running) and not self.gone.is_set():
            time.sleep(0.1)
        for c in running:
            if c.running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            if c.proc is not None:
                c.proc.wait()
                code = s.exit_code_of(c.proc.returncode)
                c.proc = None
                self._forget_record(c)
                c.state = {"terminated": {"exitCode": code, "reason": s.exit_reason(code),
                                          "startedAt": c.started_at, "finishedAt": now_iso()}}
        if not self.gone.is_set():
            self._publish()
            self._delete_pod()

    def _pre_stop(self, c: ContainerRun, deadline: float) -> None:
        """The container's preStop hook (sleep, exec or httpGet), bounded by the grace period."""
        hook = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
        budget = max(0.0, deadline - time.monotonic())
        if "sleep" in hook:
            time.sleep(min(budget, float(hook["sleep"].get("seconds", 0))))
        elif "exec" in hook or "httpGet" in hook:
            self._run_probe(c, hook, budget)

    def _delete_pod(self) -> None:
        body = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid))
        with contextlib.suppress(ApiException):
            self.node.core.delete_namespaced_pod(self.pod_name, self.namespace, body=body)

    def _kill_all(self, sig: int) -> None:
        for c in self.inits + self.containers:
            if c.running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, sig)  # type: ignore[union-attr]
                c.proc.wait()  # type: ignore[union-attr]

    def _release_network(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.sandbox is not None and not self.network_released:
            # Once only: a finished pod releases its network, then again on clean-up; a second release
            # would put its address into the free pool twice (two later pods with one address).
            self.network_released = True
            self.sandbox.destroy()
            self.node.network.release_address(self.sandbox.ip)
            if self.hostname is not None:
                self.node.refresh_hosts(self.namespace)  # peers forget the released address

    def _cleanup(self) -> None:
        self._release_network()
        for c in self.inits + self.containers:
            self._forget_record(c)
        self.node.volumes.release(self.dir / "volumes")

    # --- status ------------------------------------------------------------------------------------
    def _phase(self) -> str:
        exits = {c.name: (None if c.running() or (c.last_exit is None) else c.last_exit) for c in self.containers}
        running = [c.name for c in self.containers if c.running()]
        return s.pod_phase(self.policy, self.init_failed, exits, running)

    def _container_status(self, c: ContainerRun) -> dict[str, Any]:
        status = {"name": c.name, "image": c.spec.get("image", ""), "imageID": "", "ready": c.ready,
                  "started": c.running() and c.started, "restartCount": c.restart_count, "state": c.state,
                  "lastState": c.last_state}
        if c.proc is not None:
            status["containerID"] = f"procnode://{c.proc.pid}"
        return status

    def status(self) -> dict[str, Any]:
        phase = self._phase()
        inits_done = all(c.done and c.last_exit == 0 for c in self.inits)
        all_ready = bool(self.containers) and all(c.ready for c in self.containers) and self.terminate_at is None
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "PodReadyToStartContainers", "status": str(self.sandbox is not None)},
            {"type": "Initialized", "status": str(inits_done)},
            {"type": "ContainersReady", "status": str(all_ready)},
            {"type": "Ready", "status": str(all_ready)},
        ]
        status: dict[str, Any] = {
            "phase": phase, "startTime": self.start_time, "conditions": conditions,
            "hostIP": self.node.network.host_ip, "hostIPs": [{"ip": self.node.network.host_ip}],
            "initContainerStatuses": [self._container_status(c) for c in self.inits],
            "containerStatuses": [self._container_status(c) for c in self.containers],
        }
        if self.sandbox is not None:
            status["podIP"] = self.sandbox.ip
            status["podIPs"] = [{"ip": self.sandbox.ip}]
        if self.error:
            status["message"] = self.error[:800]
            status["reason"] = "CreateContainerConfigError"
        return status

    def _publish(self) -> None:
        """Patch ``pods/status`` when anything changed (condition times move only on a transition)."""
        status = self.status()
        if status == self._last_status:
            return
        sent = json.loads(json.dumps(status))
        previous = {c["type"]: c for c in (self._last_sent or {}).get("conditions", [])}
        for condition in sent["conditions"]:
            old = previous.get(condition["type"])
            same = old is not None and old["status"] == condition["status"]
            condition["lastTransitionTime"] = old["lastTransitionTime"] if same else now_iso()
        try:
            self.node.core.patch_namespaced_pod_status(self.pod_name, self.namespace, {"status": sent})
            self._last_status, self._last_sent = status, sent
        except ApiException as err:
            if err.status == 404:
                self.gone.set()
            else:
                log.warning("pod %s/%s: status patch failed: %s", self.namespace, self.pod_name, err.reason)


class VolumeMaker:
    """Materialises pod volumes as folders (see ``materialise``)."""

    def __init__(self, node: ProcessNode) -> None:
        self.node = node

    def materialise(self, pod: dict[str, Any], root: Path) -> tuple[dict[str, str], set[str]]:
        """Volume name -> folder on the host, and the names of read-only volumes."""
        dirs: dict[str, str] = {}
        read_only: set[str] = set()
        root.mkdir(parents=True, exist_ok=True)
        for volume in pod["spec"].get("volumes") or []:
            name = volume["name"]
            target = root / name
            if "emptyDir" in volume:
                target.mkdir(exist_ok=True)
            elif "hostPath" in volume:
                target = Path(volume["hostPath"]["path"])
            elif "configMap" in volume:
                self._write_items(target, self._config_map(pod, volume["configMap"]), volume["configMap"])
                read_only.add(name)
            elif "secret" in volume:
                ref = volume["secret"]
                self._write_items(target, self._secret(pod, ref.get("secretName", ""), ref.get("optional")), ref)
                read_only.add(name)
            elif "downwardAPI" in volume:
                self._write_items(target, self._downward(pod, volume["downwardAPI"]), {})
                read_only.add(name)
            elif "projected" in volume:
                self._projected(pod, target, volume["projected"])
                read_only.add(name)
            elif "image" in volume:
                target = self.node.images.pull(volume["image"]["reference"], pod)
                read_only.add(name)
            else:
                kinds = sorted(k for k in volume if k != "name")
                raise s.PodSpecError(f"volume {name!r}: kind {kinds} is not supported by the process node")
            dirs[name] = str(target)
        return dirs, read_only

    def release(self, root: Path) -> None:
        shutil.rmtree(root, ignore_errors=True)

    def _config_map(self, pod: dict[str, Any], ref: dict[str, Any]) -> dict[str, bytes]:
        try:
            cm = self.node.core.read_namespaced_config_map(ref["name"], pod["metadata"]["namespace"])
        except ApiException as err:
            if err.status == 404 and ref.get("optional"):
                return {}
            raise s.PodSpecError(f"configMap {ref['name']!r}: {err.reason}") from None
        data = {k: v.encode() for k, v in (cm.data or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return data

    def _secret(self, pod: dict[str, Any], name: str, optional: bool | None) -> dict[str, bytes]:
        try:
            secret = self.node.core.read_namespaced_secret(name, pod["metadata"]["namespace"])
        except ApiException as err:
            if err.status == 404 and optional:
                return {}
            raise s.PodSpecError(f"secret {name!r}: {err.reason}") from None
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def _downward(self, pod: dict[str, Any], ref: dict[str, Any]) -> dict[str, bytes]:
        out = {}
        for item in ref.get("items") or []:
            if "fieldRef" in item:
                path = item["fieldRef"]["fieldPath"]
                if path in ("metadata.labels", "metadata.annotations"):
                    values = pod["metadata"].get(path.split(".")[1]) or {}
                    text = "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
                else:
                    text = s.field_ref_value(pod, path, "", self.node.network.host_ip)
            else:
                text = s.resource_field_value(pod["spec"]["containers"][0], item["resourceFieldRef"]["resource"],
                                              item["resourceFieldRef"].get("divisor"))
            out[item["path"]] = text.encode()
        return out

    def _projected(self, pod: dict[str, Any], target: Path, ref: dict[str, Any]) -> None:
        files: dict[str, bytes] = {}
        for source in ref.get("sources") or []:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                files[token["path"]] = self.node.service_account_token(pod, token).encode()
            elif "configMap" in source:
                files.update(self._select(self._config_map(pod, source["configMap"]), source["configMap"]))
            elif "secret" in source:
                sec = source["secret"]
                files.update(self._select(self._secret(pod, sec["name"], sec.get("optional")), sec))
            elif "downwardAPI" in source:
                files.update(self._downward(pod, source["downwardAPI"]))
        self._write(target, files)

    @staticmethod
    def _select(data: dict[str, bytes], ref: dict[str, Any]) -> dict[str, bytes]:
        items = ref.get("items")
        if not items:
            return data
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}

    def _write_items(self, target: Path, data: dict[str, bytes], ref: dict[str, Any]) -> None:
        self._write(target, self._select(data, ref))

    @staticmethod
    def _write(target: Path, files: dict[str, bytes]) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


class ImagePuller:
    """Image volumes: the image is really pulled from its registry with crane, once per digest."""

    def __init__(self, node: ProcessNode) -> None:
        self.node = node
        self.root = node.state_dir / "images"
        self.lock = threading.Lock()

    def pull(self, reference: str, pod: dict[str, Any]) -> Path:
        crane = str(self.node.bin_dir / "crane")
        env = dict(os.environ)
        docker_dir = self._docker_config(pod)
        if docker_dir is not None:
            env["DOCKER_CONFIG"] = str(docker_dir)
        digest = subprocess.run([crane, "digest", reference], env=env, capture_output=True, text=True)
        if digest.returncode != 0:
            raise s.PodSpecError(f"pulling image volume {reference!r} failed: {digest.stderr.strip()[:400]}")
        key = digest.stdout.strip().replace(":", "-")
        target = self.root / key
        with self.lock:
            if not target.is_dir():
                tmp = self.root / f".{key}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                repo = s.image_repository(reference)
                pulled = f"{repo}@{digest.stdout.strip()}"
                export = subprocess.Popen([crane, "export", pulled, "-"], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE)
                untar = subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=export.stdout, capture_output=True)
                assert export.stdout is not None
                export.stdout.close()
                err = export.stderr.read().decode() if export.stderr else ""
                if export.wait() != 0 or untar.returncode != 0:
                    raise s.PodSpecError(f"pulling image volume {reference!r} failed: {err.strip()[:400]}"
                                         f"{untar.stderr.decode()[:200]}")
                tmp.rename(target)
        return target

    def _docker_config(self, pod: dict[str, Any]) -> Path | None:
        auths: dict[str, Any] = {}
        for ref in pod["spec"].get("imagePullSecrets") or []:
            data = self.node.volumes._secret(pod, ref["name"], True)
            raw = data.get(".dockerconfigjson")
            if raw:
                auths.update(json.loads(raw).get("auths", {}))
        if not auths:
            return None
        folder = self.node.state_dir / "docker" / pod["metadata"]["uid"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"auths": auths}))
        return folder


class ProcessNode:
    """The node process: registration, heartbeats, the pod watch, one worker per pod."""

    def __init__(self, kubeconfig: Path, name: str, state_dir: Path, bin_dir: Path,
                 backoff_base_s: float = s.BACKOFF_BASE_S) -> None:
        self.name = name
        self.state_dir = state_dir
        self.bin_dir = bin_dir
        self.backoff_base_s = backoff_base_s
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.api_port = int(self.api.configuration.host.rsplit(":", 1)[1])
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.volumes = VolumeMaker(self)
        self.images = ImagePuller(self)
        self.network: PodNetwork

    # --- settings pods see -------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        path = os.pathsep.join([venv_bin, str(self.bin_dir), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                "/usr/bin", "/sbin", "/bin"])
        env = {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("operator", "runtime", "trainer_image", "."))}
        for key, value in os.environ.items():  # machine-specific library settings (see the env notes)
            if key.startswith(("OPENBLAS_", "SENSEOPS_CACHE")):
                env[key] = value
        return env

    def resolve_program(self, argv: list[str], env: dict[str, str]) -> list[str]:
        if not argv:
            raise s.PodSpecError("empty command")
        program = argv[0]
        if program in s.PYTHON_NAMES:
            return [sys.executable, *argv[1:]]
        if "/" not in program:
            found = shutil.which(program, path=env.get("PATH"))
            if found is None:
                raise s.PodSpecError(f"executable {program!r} not found on the process node's PATH")
            return [found, *argv[1:]]
        return argv

    def bridge_routes(self) -> list[tuple[str, int, int]]:
        """(address, port) inside pods -> host loopback port: the API server (also at its Service
        address) and the ports listed in ``mirrors.json`` (test servers such as MinIO, the registry)."""
        routes = [(s.KUBERNETES_SERVICE_IP, 443, self.api_port), ("127.0.0.1", self.api_port, self.api_port)]
        with contextlib.suppress(OSError, ValueError):
            for port in json.loads((self.state_dir / "mirrors.json").read_text()):
                routes.append(("127.0.0.1", int(port), int(port)))
        return routes

    def env_source(self, pod: dict[str, Any]) -> s.EnvSource:
        """The ConfigMaps and Secrets the pod's containers refer to in env/envFrom."""
        config_maps: dict[str, dict[str, str]] = {}
        secrets: dict[str, dict[str, str]] = {}
        for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]:
            refs = [(e.get("configMapRef"), e.get("secretRef")) for e in c.get("envFrom") or []]
            refs += [((e.get("valueFrom") or {}).get("configMapKeyRef"), (e.get("valueFrom") or {}).get("secretKeyRef"))
                     for e in c.get("env") or []]
            for cm, sec in refs:
                if cm and cm["name"] not in config_maps:
                    data = self.volumes._config_map(pod, {"name": cm["name"], "optional": True})
                    if data or not cm.get("optional"):
                        config_maps[cm["name"]] = {k: v.decode() for k, v in data.items()}
                if sec and sec["name"] not in secrets:
                    data = self.volumes._secret(pod, sec["name"], True)
                    if data or not sec.get("optional"):
                        secrets[sec["name"]] = {k: v.decode(errors="replace") for k, v in data.items()}
        return s.EnvSource({k: v for k, v in config_maps.items() if v}, {k: v for k, v in secrets.items() if v})

    def service_account_token(self, pod: dict[str, Any], source: dict[str, Any]) -> str:
        meta = pod["metadata"]
        spec = client.V1TokenRequestSpec(
            audiences=[source["audience"]] if source.get("audience") else [],
            expiration_seconds=int(source.get("expirationSeconds", 3607)),
            bound_object_ref=client.V1BoundObjectReference(kind="Pod", api_version="v1", name=meta["name"],
                                                           uid=meta["uid"]))
        result = self.core.create_namespaced_service_account_token(
            pod["spec"].get("serviceAccountName", "default"), meta["namespace"],
            client.AuthenticationV1TokenRequest(spec=spec))
        return str(result.status.token)

    # --- node registration ---------------------------------------------------------------------
    def node_object(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": {
                "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                NODE_LABEL: "true", "nvidia.com/gpu.present": "true",
                "node.kubernetes.io/instance-type": "senseops.process-node"}},
            "spec": {"taints": [TAINT]},
        }

    def node_status(self) -> dict[str, Any]:
        stamp = now_iso()
        return {"capacity": CAPACITY, "allocatable": CAPACITY,
                "addresses": [{"type": "InternalIP", "address": self.network.host_ip},
                              {"type": "Hostname", "address": self.name}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "process node (kubelet stand-in) is posting ready status",
                                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
                "nodeInfo": {"kubeletVersion": "v1.37.2-procnode", "containerRuntimeVersion": "procnode://1",
                             "operatingSystem": "linux", "architecture": "amd64", "osImage": "senseops process node",
                             "kernelVersion": os.uname().release, "kubeProxyVersion": "", "machineID": "",
                             "systemUUID": "", "bootID": ""},
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}

    def register(self) -> None:
        try:
            self.core.create_node(self.node_object())
        except ApiException as err:
            if err.status != 409:
                raise
            self.core.patch_node(self.name, self.node_object())
        self.core.patch_node_status(self.name, {"status": self.node_status()})

    def heartbeat(self) -> None:
        while not self.stopping.wait(HEARTBEAT_S):
            try:
                self.renew_lease()
                self.core.patch_node_status(self.name, {"status": self.node_status()})
            except Exception as err:  # keep beating; the API server may be restarting
                log.warning("heartbeat failed: %s", err)

    def renew_lease(self) -> None:
        now = datetime.now(UTC)
        body = {"metadata": {"name": self.name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_S,
                         "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
        try:
            self.coord.patch_namespaced_lease(self.name, "kube-node-lease", body)
        except ApiException as err:
            if err.status != 404:
                raise
            self.coord.create_namespaced_lease("kube-node-lease", body)

    # --- pods ------------------------------------------------------------------------------------
    def refresh_hosts(self, namespace: str) -> None:
        """Rewrite the hosts file of every pod with a host name in ``namespace`` (see ``spec.hosts_file``).

        Written in place (same inode), so the bind mount over each container's /etc/hosts shows the new
        lines at once; the resolver reads the file on every lookup, as it would ask cluster DNS.
        """
        with self.lock:
            workers = [w for w in self.workers.values() if w.namespace == namespace]
        entries = [(w, w.host_entry()) for w in workers]
        peers = [e for _, e in entries if e is not None]
        for worker, entry in entries:
            if entry is None:
                continue
            with contextlib.suppress(OSError), open(worker.hosts_path, "r+", encoding="utf-8") as handle:
                handle.truncate(0)
                handle.write(s.hosts_file(namespace, entry, peers))

    def forget(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.gone.set()
                return
            if worker is None:
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                    if pod["metadata"].get("deletionTimestamp"):
                        PodWorker(self, pod)._delete_pod()
                    return
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.update(pod)
                worker.start()
                return
        worker.update(pod)

    def watch_pods(self) -> None:
        selector = f"spec.nodeName={self.name}"
        while not self.stopping.is_set():
            try:
                listed = self.api.sanitize_for_serialization(self.core.list_pod_for_all_namespaces(
                    field_selector=selector))
                seen = set()
                for pod in listed["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self.on_pod("ADDED", pod)
                with self.lock:
                    vanished = [w for uid, w in self.workers.items() if uid not in seen]
                for w in vanished:
                    w.gone.set()
                stream = watch.Watch().stream(self.core.list_pod_for_all_namespaces, field_selector=selector,
                                              resource_version=listed["metadata"]["resourceVersion"],
                                              timeout_seconds=30, _preload_content=False)
                for event in stream:
                    if self.stopping.is_set():
                        return
                    pod = event["raw_object"]
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.on_pod(event["type"], pod)
            except Exception as err:  # relist after any watch failure (expired version, restart)
                if not self.stopping.is_set():
                    log.warning("pod watch: %s; relisting", err)
                    time.sleep(1)

    # --- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> None:
        (self.state_dir / "containers").mkdir(parents=True, exist_ok=True)
        self.network = PodNetwork.create()
        (self.state_dir / "node.json").write_text(json.dumps({
            "pid": os.getpid(), "start": proc_start_time(os.getpid()), "block": self.network.plan.index}))
        try:
            self.register()
            self.renew_lease()
            threading.Thread(target=self.heartbeat, daemon=True, name="heartbeat").start()
            threading.Thread(target=self.watch_pods, daemon=True, name="pod-watch").start()
            log.info("process node %s ready (pod network %s, host %s)", self.name, self.network.plan.pod_cidr,
                     self.network.host_ip)
            self.stopping.wait()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.grace_s = min(w.grace_s, 5.0)
            w.terminate_at = w.terminate_at or time.monotonic()
            w.gone.set()  # stop without deleting pod objects: the node is going away, not the pods
        for w in workers:
            w.join(timeout=10)
        for record in (self.state_dir / "containers").glob("*.json"):
            kill_recorded(record, signal.SIGKILL)
            record.unlink(missing_ok=True)
        self.network.destroy()
