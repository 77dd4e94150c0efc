#!/usr/bin/env bash
# Prints KEDA's CRDs (one YAML stream) from the pinned KEDA Go module, downloading it if needed, so the
# CRDs always match the pinned version and are not copied into this repository:
#   tests/autoscale/keda-crds.sh | kubectl apply --server-side -f -
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:--buildvcs=false}"
dir="$(cd "$here/go/keda" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
crds="$dir/config/crd/bases"
[[ -d $crds ]] || { echo "error: no CRDs in $crds (is github.com/kedacore/keda/v2@$KEDA_VERSION downloaded?)" >&2; exit 1; }
for f in "$crds"/*.yaml; do
  echo "---"
  cat "$f"
done
