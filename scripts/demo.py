"""`make demo`, control-plane part: local cluster, CRDs, the operator, the samples, reconciled status.

The samples' ASRModel points at a model directory in the demo's own `file://` store (.demo/store), so
the operator can really verify its sha256 with no cloud account. Everything started here keeps running
after the demo so you can explore with kubectl; `make demo-down` stops it.

Output: numbered phases with their time (a live timer on a terminal, JSON lines when not a TTY); the
chatty tools (control plane start-up, model build) write to log files under .demo/logs/, named on screen.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import yaml

from senseops_common.storage import local_directory_manifest
from tests.controlplane.cluster import kubectl_binary

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
STORE = DEMO / "store"
NAMESPACE = "senseops-demo"
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
OPERATOR_PID = DEMO / "operator.pid"
LOGS = DEMO / "logs"


class Phases:
    """Numbered phases with elapsed time: a live timer line on a terminal, one JSON line per event otherwise."""

    def __init__(self, total: int, out: TextIO = sys.stdout, tick_s: float = 0.5) -> None:
        self.total = total
        self.out = out
        self.tty = out.isatty()
        self.tick_s = tick_s
        self.number = 0
        self.notes: list[str] = []  # result lines of the running phase, shown under its line when it ends

    def note(self, text: str) -> None:
        """A result line; on a terminal it waits for the phase's line to finish (the timer owns that line)."""
        if self.tty:
            self.notes.append(text)
        else:
            self.out.write(f"      {text}\n")
            self.out.flush()

    def _emit(self, **event: object) -> None:
        self.out.write(json.dumps({"phase": self.number, "of": self.total, **event}) + "\n")
        self.out.flush()

    @contextmanager
    def phase(self, title: str, log: Path | None = None) -> Iterator[None]:
        """Run the body as the next phase; on failure name the log to read and re-raise."""
        self.number += 1
        head = f"[{self.number}/{self.total}] {title}"
        began = time.monotonic()
        where = f" (log: {log.relative_to(ROOT) if log.is_relative_to(ROOT) else log})" if log else ""
        stop = threading.Event()
        ticker = None
        if self.tty:
            def tick() -> None:
                while not stop.wait(self.tick_s):
                    self.out.write(f"\r\033[K{head} … {time.monotonic() - began:.0f} s")
                    self.out.flush()

            self.out.write(f"{head} …")
            self.out.flush()
            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        else:
            self._emit(title=title, status="started", **({"log": str(log)} if log else {}))
        try:
            yield
        except BaseException:
            stop.set()
            if ticker:
                ticker.join()
                self.out.write(f"\r\033[K{head} ✗ failed after {time.monotonic() - began:.1f} s{where}\n")
                self.out.write("".join(f"      {n}\n" for n in self.notes))
                self.notes.clear()
            else:
                self._emit(title=title, status="failed", seconds=round(time.monotonic() - began, 1))
            self.out.flush()
            raise
        stop.set()
        if ticker:
            ticker.join()
            self.out.write(f"\r\033[K{head} ✓ {time.monotonic() - began:.1f} s{where}\n")
            self.out.write("".join(f"      {n}\n" for n in self.notes))
            self.notes.clear()
        else:
            self._emit(title=title, status="done", seconds=round(time.monotonic() - began, 1))
        self.out.flush()


PHASES = Phases(total=5)


def say(text: str) -> None:
    """A result line under the current phase."""
    PHASES.note(text)


def run_logged(args: list[str], log: Path) -> str:
    """Run a chatty command with its stderr (and stdout) appended to ``log``; return its stdout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        result = subprocess.run(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=sink)
        sink.write(result.stdout)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[1:])} failed (exit {result.returncode}); see {log}")
    return result.stdout.decode()


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
        say("already running")
        return
    shutil.rmtree(ROOT / ".cluster" / "kubectl-cache", ignore_errors=True)
    run_logged([sys.executable, "-m", "tests.controlplane", "up"], LOGS / "controlplane.log")
    say("etcd, kube-apiserver, controller-manager, scheduler and kwok are up (logs in .cluster/logs/)")


def demo_model_dir() -> Path:
    """The tiny SenseVoice-architecture model (built once and cached; FunASR's notices go to the log)."""
    out = run_logged([sys.executable, "-m", "tests.testmodel", "build"], LOGS / "model-build.log")
    return Path(out.strip().splitlines()[-1])


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
           "SENSEOPS_BIND_HOST": "127.0.0.1", "SENSEOPS_METRICS_PORT": "19090", "SENSEOPS_LIVENESS_PORT": "18080",
           "SENSEOPS_FILE_ARTIFACT_ROOT": str(STORE)}  # the demo's models live in its file:// store
    proc = subprocess.Popen([sys.executable, "-m", "senseops_operator"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    OPERATOR_PID.write_text(str(proc.pid))
    say(f"pid {proc.pid}, log .demo/operator.log, metrics http://127.0.0.1:19090/metrics")


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
    phases = PHASES
    with phases.phase("local Kubernetes control plane", LOGS / "controlplane.log"):
        cluster_up()
    with phases.phase("CRDs, generated from the operator's models"):
        kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=senseops",
                "--timeout=60s")
        kubectl("create", "namespace", NAMESPACE, check=False)
    with phases.phase("tiny SenseVoice model into the local file:// store", LOGS / "model-build.log"):
        uri, sha, size = publish_model("2024.07-base")
        say(f"{uri}  sha256 {sha[:16]}…  {size / 1e6:.1f} MB")
    with phases.phase("operator"):
        start_operator()
    with phases.phase(f"samples (manifests/samples/) in namespace {NAMESPACE}", DEMO / "operator.log"):
        # A rerun starts from fresh objects (the artifact of an ASRModel is immutable and the demo model may
        # have been rebuilt); the running operator releases their finalizers.
        kubectl("delete", "asr", "--all", "-n", NAMESPACE, "--timeout=60s", check=False)
        model, *others = samples(uri, sha, size)
        say(kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(model)).strip())
        wait_reconciled()  # the job and the rollout reference the model: let it be verified first
        for doc in others:
            say(kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(doc)).strip())
        time.sleep(3)
    print(f"\nkubectl get asr -n {NAMESPACE}")
    print(kubectl("get", "asr", "-n", NAMESPACE))
    print("conditions")
    for item in json.loads(kubectl("get", "asr", "-n", NAMESPACE, "-o", "json"))["items"]:
        for cond in (item.get("status") or {}).get("conditions", []):
            print(f"   {item['kind']}/{item['metadata']['name']}: {cond['type']}={cond['status']} "
                  f"({cond['reason']}) {cond['message']}")
    print(f"\nexport KUBECONFIG={KUBECONFIG}   # explore; `make demo-down` stops everything")
    return 0


if __name__ == "__main__":
    sys.exit(main())
