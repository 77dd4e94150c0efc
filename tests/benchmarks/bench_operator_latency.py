"""Benchmark: create → reconciled-status latency of the operator over N ASRModels (not a test).

    make bench-operator            # or: python tests/benchmarks/bench_operator_latency.py --count 50

Uses the running local control plane (`make cluster-up`; .cluster/kubeconfig) or starts one, starts the
real operator, creates N ASRModels whose artifact is a small file:// directory, and records for each the
time from the create call returning to the first watch event whose status has `observedGeneration`
(and, separately, phase Ready). Prints p50/p95/max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client, config, watch

from senseops_common.storage import local_directory_manifest
from tests.controlplane.cluster import LocalCluster, kubectl_binary
from tests.operator.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between creates")
    parser.add_argument("--cluster-root", type=Path, default=ROOT / ".cluster",
                        help="control plane folder (started there unless already running)")
    args = parser.parse_args()

    cluster = LocalCluster(args.cluster_root)
    started_cluster = False
    if not cluster.status().get("readyz"):
        cluster.up()
        started_cluster = True
    kubeconfig = cluster.kubeconfig
    config.load_kube_config(str(kubeconfig))
    api = client.CustomObjectsApi()
    core = client.CoreV1Api()
    import subprocess

    subprocess.run([kubectl_binary(), f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-k", str(ROOT / "crds")],
                   check=True, capture_output=True)
    ns = f"bench-{int(time.time())}"
    core.create_namespace({"metadata": {"name": ns}})

    workdir = Path(tempfile.mkdtemp(prefix="senseops-bench-"))
    model = workdir / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"x" * 65536)
    _, digest, size = local_directory_manifest(model)

    operator = OperatorProcess(kubeconfig, workdir / "operator.log", [ns],
                               {"SENSEOPS_FILE_ARTIFACT_ROOT": str(workdir)}).start()
    created: dict[str, float] = {}
    observed: dict[str, float] = {}
    ready: dict[str, float] = {}
    done = threading.Event()

    def watcher() -> None:
        w = watch.Watch()
        for event in w.stream(api.list_namespaced_custom_object, "senseops.dev", "v1alpha1", ns, "asrmodels",
                              timeout_seconds=300):
            obj = event["object"]
            name, status, now = obj["metadata"]["name"], obj.get("status") or {}, time.monotonic()
            if "observedGeneration" in status:
                observed.setdefault(name, now)
            if status.get("phase") == "Ready":
                ready.setdefault(name, now)
            if len(ready) >= args.count:
                w.stop()
        done.set()

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    time.sleep(1)
    for i in range(args.count):
        name = f"m-{i:03d}"
        body = {"apiVersion": "senseops.dev/v1alpha1", "kind": "ASRModel", "metadata": {"name": name},
                "spec": {"version": "v1", "artifact": {"uri": f"file://{model}/", "sha256": digest,
                                                        "sizeBytes": size}}}
        api.create_namespaced_custom_object("senseops.dev", "v1alpha1", ns, "asrmodels", body)
        created[name] = time.monotonic()
        time.sleep(args.interval)
    done.wait(timeout=300)
    # kopf keeps a finalizer on objects with timers: remove them while the operator still runs.
    api.delete_collection_namespaced_custom_object("senseops.dev", "v1alpha1", ns, "asrmodels")
    time.sleep(5)
    operator.stop()
    core.delete_namespace(ns)
    if started_cluster:
        cluster.down()

    def row(label: str, ends: dict[str, float]) -> str:
        lat = [(ends[n] - created[n]) * 1000 for n in created if n in ends]
        if not lat:
            return f"{label:<28} {'-':>8} {'-':>8} {'-':>8} {0:>6}/{len(created)}"
        return (f"{label:<28} {statistics.median(lat):8.0f} {percentile(lat, 0.95):8.0f} {max(lat):8.0f} "
                f"{len(lat):>6}/{len(created)}")

    print(f"\noperator create→status latency, {args.count} ASRModels, one every {args.interval}s (ms)")
    print(f"{'milestone':<28} {'p50':>8} {'p95':>8} {'max':>8} {'seen':>8}")
    print(row("status.observedGeneration", observed))
    print(row("phase Ready (sha256 checked)", ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
