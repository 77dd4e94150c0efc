"""The whole local stack behind `make cluster-up`: control plane, process node, and the data plane
servers (MinIO, the OCI registry, Prometheus, the Gateway stand-in with HAProxy).

    python -m tests.stack up [--light]   # --light (or STACK=light in make): control plane + process node only
    python -m tests.stack status         # every part, its address, and the credentials tests use
    python -m tests.stack down

The control plane and the process node keep their own state and launchers; the servers run under one
supervisor process (``serve``), which owns them like a pytest fixture does and stops them all when it
gets SIGTERM. ``.cluster/stack.json`` tells clients where everything is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.procnode.procs import proc_start_time

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / ".cluster"
STATE = ROOT / "stack.json"
SUPERVISOR = ROOT / "stack-supervisor.json"
PROCNODE_STATE = ROOT / "procnode"
GATEWAY_STATE = ROOT / "gateway"


def _python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        str(REPO / p) for p in ("operator", "runtime", "trainer_image", "."))}


def serve(kubeconfig: Path) -> None:
    """Run the servers until SIGTERM; write their addresses to stack.json."""
    from tests.procnode.launcher import ProcessNodeHandle
    from tests.servers.minio import MinioServer
    from tests.servers.prometheus import PrometheusServer, PrometheusSettings
    from tests.servers.registry import RegistryServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    servers = ROOT / "servers"
    minio = MinioServer(servers / "minio").start()
    registry = RegistryServer(servers / "registry").start()
    prometheus = PrometheusServer(servers / "prometheus",
                                  PrometheusSettings(kubeconfig=kubeconfig, scrape_interval_s=5.0)).start()
    gateway_log = (servers / "gateway.log").open("ab")
    gateway = subprocess.Popen([sys.executable, "-m", "tests.gateway", "run", "--kubeconfig", str(kubeconfig),
                                "--state-dir", str(GATEWAY_STATE)], stdout=gateway_log, stderr=subprocess.STDOUT,
                               cwd=REPO, env=_python_env())
    # Pods reach MinIO and the registry at the same loopback addresses host processes use.
    ProcessNodeHandle(PROCNODE_STATE, kubeconfig).mirror(minio.port, registry.port)
    state = {
        "minio": {"endpoint": minio.endpoint, "env": minio.store_env()},
        "registry": {"host": registry.host, "user": registry.user, "password": registry.password,
                     "docker_config": str(registry.docker_config_dir)},
        "prometheus": {"url": prometheus.url},
        "gateway": {"state_dir": str(GATEWAY_STATE), "log": str(servers / "gateway.log")},
    }
    STATE.write_text(json.dumps(state, indent=2) + "\n")
    STATE.chmod(0o600)
    try:
        while not stop.wait(1.0):
            if gateway.poll() is not None:
                print(f"gateway stand-in exited ({gateway.returncode}); see {servers / 'gateway.log'}", flush=True)
                break
    finally:
        gateway.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            gateway.wait(15)
        if gateway.poll() is None:
            gateway.kill()
        for server in (prometheus, registry, minio):
            with contextlib.suppress(Exception):
                server.stop()
        STATE.unlink(missing_ok=True)


def _supervisor_running() -> bool:
    try:
        record = json.loads(SUPERVISOR.read_text())
    except (OSError, ValueError):
        return False
    return bool(proc_start_time(int(record["pid"])) == record.get("start"))


def up(light: bool) -> None:
    from tests.controlplane.cluster import LocalCluster, bin_dir
    from tests.procnode.launcher import ProcessNodeHandle

    cluster = LocalCluster(ROOT)
    cluster.up()
    ProcessNodeHandle(PROCNODE_STATE, cluster.kubeconfig).up(bin_dir())
    if light:
        print(f"control plane + process node up; export KUBECONFIG={cluster.kubeconfig}")
        return
    if not _supervisor_running():
        subprocess.run([sys.executable, "-m", "tests.gateway", "crds", "--kubeconfig", str(cluster.kubeconfig)],
                       check=True, cwd=REPO, env=_python_env(), stdout=subprocess.DEVNULL)
        STATE.unlink(missing_ok=True)
        (ROOT / "logs").mkdir(parents=True, exist_ok=True)
        log = (ROOT / "logs" / "stack.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "tests.stack", "serve", "--kubeconfig",
                                 str(cluster.kubeconfig)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO, env=_python_env())
        SUPERVISOR.write_text(json.dumps({"pid": proc.pid, "start": proc_start_time(proc.pid)}))
        deadline = time.monotonic() + 180
        while not STATE.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stack's servers did not start; see {ROOT / 'logs' / 'stack.log'}")
            time.sleep(0.5)
    print(f"stack up: {json.dumps(status(), indent=2)}\nexport KUBECONFIG={cluster.kubeconfig}")


def down() -> None:
    from tests.controlplane.cluster import LocalCluster

    if _supervisor_running():
        record = json.loads(SUPERVISOR.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(record["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 40
        while _supervisor_running() and time.monotonic() < deadline:
            time.sleep(0.2)
        if _supervisor_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(record["pid"]), signal.SIGKILL)
    SUPERVISOR.unlink(missing_ok=True)
    STATE.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "tests.gateway", "down", "--state-dir", str(GATEWAY_STATE)],
                   cwd=REPO, env=_python_env(), check=False)
    from tests.procnode.launcher import ProcessNodeHandle

    ProcessNodeHandle(PROCNODE_STATE, ROOT / "kubeconfig").down()
    LocalCluster(ROOT).down()


def status() -> dict[str, Any]:
    from tests.controlplane.cluster import LocalCluster
    from tests.procnode.launcher import ProcessNodeHandle

    servers: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        servers = json.loads(STATE.read_text())
    return {
        "control_plane": LocalCluster(ROOT).status(),
        "process_node": {"running": ProcessNodeHandle(PROCNODE_STATE, ROOT / "kubeconfig").running(),
                         "state_dir": str(PROCNODE_STATE)},
        "servers": {"running": _supervisor_running(), **servers},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "serve"])
    parser.add_argument("--light", action="store_true", help="control plane and process node only")
    parser.add_argument("--kubeconfig", type=Path, default=ROOT / "kubeconfig")
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args.light or os.environ.get("STACK") == "light")
    elif args.command == "down":
        down()
    elif args.command == "serve":
        serve(args.kubeconfig)
    else:
        report = status()
        print(json.dumps(report, indent=2))
        return 0 if report["control_plane"].get("running") else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
