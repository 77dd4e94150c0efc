#!/usr/bin/env bash
# Creates (once) and updates (when requirements.txt or requirements/*.txt change) the project's virtualenv.
# The venv lives outside the checkout so fresh clones on the same machine reuse it; .venv links to it.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SENSEOPS_CACHE:-$HOME/.cache/senseops}"
venv="$cache/venv"
# Keyed by every requirement file (the union and the per-image sets), so any pin change reinstalls.
want=$(cat requirements.txt requirements/*.txt | sha256sum | cut -c1-16)
mkdir -p "$cache"
exec 9>"$cache/venv.lock"
flock 9
if [[ ! -x "$venv/bin/python" ]]; then
  echo "==> creating virtualenv $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
if [[ "$(cat "$venv/.requirements-sha" 2>/dev/null)" != "$want" ]]; then
  echo "==> installing requirements.txt into $venv (first run downloads torch: several minutes)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  echo "$want" >"$venv/.requirements-sha"
fi
# The project itself, editable, so its console commands (senseops, senseops-runtime, senseops-trainer,
# senseops-operator) and `python -m senseops_…` work outside make. The venv is shared by every checkout
# on the machine: the commands run the code of the checkout that last ran this (PYTHONPATH, as make and
# pytest set it, still wins inside a checkout).
stamp="$PWD $(sha256sum pyproject.toml | cut -c1-16)"
if [[ "$(cat "$venv/.editable" 2>/dev/null)" != "$stamp" ]]; then
  echo "==> installing this checkout ($PWD) editable into $venv"
  if ! "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e . \
    >"$venv/.editable.log" 2>&1; then
    cat "$venv/.editable.log" >&2
    exit 1
  fi
  rm -rf build
  echo "$stamp" >"$venv/.editable"
fi
ln -sfn "$venv" .venv
