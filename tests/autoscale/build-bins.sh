#!/usr/bin/env bash
# Builds KEDA's operator and metrics API server (cmd/operator, cmd/adapter) from the pinned wrapper module
# (go/keda, versions.env) into $SENSEOPS_CACHE/bin as keda-operator and keda-adapter, and links .bin/ to it.
# A no-op when already built. KEDA compiles every scaler it has (clouds, queues, databases): the first build
# is long (see tests/autoscale/README.md for the measured minutes); later ones only check the key.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:--buildvcs=false}"
pkg=github.com/kedacore/keda/v2
"$repo/scripts/build-go-bins.sh" "$here/go/keda" \
  --ldflags "-s -w -X '$pkg/version.Version=$KEDA_VERSION' -X '$pkg/version.GitCommit=release'" \
  keda-operator=$pkg/cmd/operator \
  keda-adapter=$pkg/cmd/adapter
