"""Gateway API CRDs (standard channel) taken from the pinned Go module at set-up time; nothing is vendored."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
GATEWAY_API_VERSION = os.environ.get("SENSEOPS_GATEWAY_API_VERSION", "v1.6.1")


class CrdError(RuntimeError):
    """The CRDs could not be fetched or applied; the message says what to fix."""


def standard_crd_files(version: str = GATEWAY_API_VERSION) -> list[Path]:
    """`go mod download` the module (cached in the Go module cache) and list config/crd/standard/*.yaml."""
    try:
        result = subprocess.run(["go", "mod", "download", "-json", f"{GATEWAY_API_MODULE}@{version}"],
                                capture_output=True, text=True, timeout=300, cwd="/")
    except FileNotFoundError as err:
        raise CrdError("`go` is not installed: the Gateway API CRDs come from the Go module zip") from err
    if result.returncode != 0:
        raise CrdError(f"`go mod download {GATEWAY_API_MODULE}@{version}` failed:\n{result.stdout}{result.stderr}")
    directory = Path(json.loads(result.stdout)["Dir"]) / "config" / "crd" / "standard"
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CrdError(f"no CRD files in {directory}")
    return files


def install(kubectl: list[str], version: str = GATEWAY_API_VERSION, timeout_s: float = 120.0) -> list[Path]:
    """Apply the standard-channel files with ``kubectl`` (argv prefix, kubeconfig included) and wait until the
    CRDs are Established. Safe to rerun."""
    files = standard_crd_files(version)
    args = [arg for path in files for arg in ("-f", str(path))]
    applied = subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", *args],
                             capture_output=True, text=True, timeout=timeout_s)
    if applied.returncode != 0:
        raise CrdError(f"kubectl apply of the Gateway API {version} CRDs failed:\n{applied.stderr}{applied.stdout}")
    waited = subprocess.run([*kubectl, "wait", "--for=condition=Established", f"--timeout={int(timeout_s)}s",
                             "crd/gatewayclasses.gateway.networking.k8s.io", "crd/gateways.gateway.networking.k8s.io",
                             "crd/httproutes.gateway.networking.k8s.io"], capture_output=True, text=True,
                            timeout=timeout_s + 10)
    if waited.returncode != 0:
        raise CrdError(f"Gateway API CRDs not Established:\n{waited.stderr}{waited.stdout}")
    return files
