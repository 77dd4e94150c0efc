#!/usr/bin/env bash
# Builds the data-plane binaries from their pinned wrapper modules (go/*/go.mod, versions.env) into
# $SENSEOPS_CACHE/bin and links .bin/ to it: the OCI registry (distribution v3), crane
# (go-containerregistry), and Prometheus 3.x with promtool. A no-op when already built.
#
#   tests/servers/build-bins.sh [registry|crane|prometheus ...]   (default: all three)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
build="$repo/scripts/build-go-bins.sh"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:--buildvcs=false}"

# release_time MODULE_DIR MODULE -> the pinned release's publication time; a build date that keeps the
# build key stable (a wall-clock date would rebuild every time).
release_time() {
  (cd "$1" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$2")
}

build_registry() {
  local pkg=github.com/distribution/distribution/v3/version
  "$build" "$here/go/registry" --ldflags "-s -w -X '$pkg.version=$REGISTRY_VERSION' -X '$pkg.mainpkg=github.com/distribution/distribution/v3'" \
    registry=github.com/distribution/distribution/v3/cmd/registry
}

build_crane() {
  "$build" "$here/go/crane" --ldflags "-s -w -X 'github.com/google/go-containerregistry/cmd/crane/cmd.Version=$CRANE_VERSION'" \
    crane=github.com/google/go-containerregistry/cmd/crane
}

build_prometheus() {
  # Upstream's release build (promu) stamps these; `go build` stamps none. The build tags drop every
  # service discovery except Kubernetes (file and http SD are always compiled in): far less to compile.
  local pkg=github.com/prometheus/common/version ldflags
  ldflags="-s -w -X '$pkg.Version=$PROMETHEUS_VERSION' -X '$pkg.Branch=v$PROMETHEUS_VERSION'"
  ldflags+=" -X '$pkg.BuildUser=senseops' -X '$pkg.BuildDate=$(release_time "$here/go/prometheus" github.com/prometheus/prometheus)'"
  "$build" "$here/go/prometheus" --tags remove_all_sd,enable_kubernetes_sd --ldflags "$ldflags" \
    prometheus=github.com/prometheus/prometheus/cmd/prometheus \
    promtool=github.com/prometheus/prometheus/cmd/promtool
}

wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=(registry crane prometheus)
for name in "${wanted[@]}"; do
  case $name in
    registry) build_registry ;;
    crane) build_crane ;;
    prometheus) build_prometheus ;;
    *) echo "error: unknown binary '$name' (choose from: registry crane prometheus)" >&2; exit 2 ;;
  esac
done
