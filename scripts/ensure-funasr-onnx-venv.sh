#!/usr/bin/env bash
# A separate small virtualenv for the funasr-onnx peer in the offline benchmark (make bench-offline).
# funasr-onnx pins numpy<=1.26.4, which conflicts with the project venv's numpy 2, so it lives on its own;
# the benchmark runs it in a subprocess (tests/benchmarks/funasr_onnx_peer.py). Prints the venv's python.
set -euo pipefail
cache="${SENSEOPS_CACHE:-$HOME/.cache/senseops}"
venv="$cache/venv-funasr-onnx"
stamp="$venv/.senseops-ready"
ort="$("${PROJECT_PY:-.venv/bin/python}" -c "import onnxruntime; print(onnxruntime.__version__)" 2>/dev/null || echo 1.31.1)"
want="funasr-onnx==0.4.3 onnxruntime==$ort"  # the same ONNX Runtime as our engines
mkdir -p "$cache"
exec 9>"$venv.lock"
flock 9
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "==> building $venv ($want)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want >&2
  "$venv/bin/python" -c "import funasr_onnx, numpy, onnxruntime" >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
