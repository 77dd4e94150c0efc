"""`make demo`, control-plane part: local cluster, CRDs, the operator, the samples, reconciled status.

The samples' ASRModel points at a model directory in the demo's own `file://` store (.demo/store), so
the operator can really verify its sha256 with no cloud account. Everything started here keeps running
after the demo so you can explore with kubectl; `make demo-down` stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from senseops_common.storage import local_directory_manifest
from tests.controlplane.cluster import kubectl_binary

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
STORE = DEMO / "store"
NAMESPACE = "senseops-demo"
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
OPERATOR_PID = DEMO / "operator.pid"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    # A discovery cache per cluster: a new cluster can reuse an old one's port, and kubectl's default
    # cache (keyed by host:port) would then hide our freshly installed CRDs.
    cache = ROOT / ".cluster" / "kubectl-cache"
    result = subprocess.run([kubectl_binary(), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={cache}", *args],
                            input=input, text=True, capture_output=True)
    if check and result.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def cluster_up() -> None:
    status = subprocess.run([sys.executable, "-m", "tests.controlplane", "status"], cwd=ROOT,
                            capture_output=True, text=True)
    if status.returncode == 0:
        say("local control plane already running")
        return
    say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    shutil.rmtree(ROOT / ".cluster" / "kubectl-cache", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "tests.controlplane", "up"], cwd=ROOT, check=True)


def demo_model_dir() -> Path:
    """The tiny SenseVoice-architecture model (built and cached by the shared builder)."""
    from senseops_common.testmodel import ensure_tiny_model

    return Path(ensure_tiny_model())


def publish_model(version: str) -> tuple[str, str, int]:
    """Copy the model into the demo store under models/{name}/{version}/; return (uri, sha256, size)."""
    source = demo_model_dir()
    target = STORE / "models" / "sensevoice-small" / version
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    _, digest, size = local_directory_manifest(target)
    return f"file://{target}/", digest, size


def samples(uri: str, sha: str, size: int) -> list[dict[str, object]]:
    docs = []
    for name in ("asrmodel.yaml", "finetunejob.yaml", "rollout.yaml"):
        doc = yaml.safe_load((ROOT / "manifests" / "samples" / name).read_text())
        if doc["kind"] == "ASRModel":
            doc["spec"]["artifact"].update({"uri": uri, "sha256": sha, "sizeBytes": size})
        if doc["kind"] == "FineTuneJob":
            doc["spec"]["dataset"]["source"] = f"file://{STORE}/"
            doc["spec"]["output"]["storeUri"] = f"file://{STORE}/"
        docs.append(doc)
    return docs


def stop_operator() -> None:
    if OPERATOR_PID.exists():
        pid = int(OPERATOR_PID.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            pass
        OPERATOR_PID.unlink()


def start_operator() -> None:
    stop_operator()
    log = (DEMO / "operator.log").open("ab")
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "SENSEOPS_NAMESPACES": NAMESPACE,
           "SENSEOPS_BIND_HOST": "127.0.0.1", "SENSEOPS_METRICS_PORT": "19090", "SENSEOPS_LIVENESS_PORT": "18080"}
    proc = subprocess.Popen([sys.executable, "-m", "senseops_operator"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    OPERATOR_PID.write_text(str(proc.pid))
    say(f"operator running (pid {proc.pid}, log .demo/operator.log, metrics http://127.0.0.1:19090/metrics)")


def wait_reconciled(timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = json.loads(kubectl("get", "asr", "-n", NAMESPACE, "-o", "json"))["items"]
        if items and all("observedGeneration" in (i.get("status") or {}) for i in items) and any(
            (i.get("status") or {}).get("phase") == "Ready" for i in items
        ):
            return
        time.sleep(1)
    print("warning: not every object was reconciled in time; see .demo/operator.log", file=sys.stderr)


def main() -> int:
    if sys.argv[1:] == ["down"]:
        stop_operator()
        subprocess.run([sys.executable, "-m", "tests.controlplane", "down"], cwd=ROOT, check=False)
        return 0
    DEMO.mkdir(exist_ok=True)
    cluster_up()
    say("installing the CRDs (generated from the operator's models)")
    kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=senseops",
            "--timeout=60s")
    kubectl("create", "namespace", NAMESPACE, check=False)
    say("publishing the demo model to the local file:// store (no cloud account needed)")
    uri, sha, size = publish_model("2024.07-base")
    print(f"   {uri}\n   sha256 {sha} ({size} bytes)")
    start_operator()
    # A rerun starts from fresh objects (the artifact of an ASRModel is immutable and the demo model may
    # have been rebuilt); the running operator releases their finalizers.
    kubectl("delete", "asr", "--all", "-n", NAMESPACE, "--timeout=60s", check=False)
    say(f"applying manifests/samples/ to namespace {NAMESPACE}")
    model, *others = samples(uri, sha, size)
    print("   " + kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(model)).strip())
    wait_reconciled()  # the job and the rollout reference the model: let it be verified first
    for doc in others:
        print("   " + kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(doc)).strip())
    time.sleep(3)
    say(f"kubectl get asr -n {NAMESPACE}")
    print(kubectl("get", "asr", "-n", NAMESPACE))
    say("conditions")
    for item in json.loads(kubectl("get", "asr", "-n", NAMESPACE, "-o", "json"))["items"]:
        for cond in (item.get("status") or {}).get("conditions", []):
            print(f"   {item['kind']}/{item['metadata']['name']}: {cond['type']}={cond['status']} "
                  f"({cond['reason']}) {cond['message']}")
    print(f"\nexport KUBECONFIG={KUBECONFIG}   # explore; `make demo-down` stops everything")
    return 0


if __name__ == "__main__":
    sys.exit(main())
