#!/usr/bin/env bash
# Builds helm from its pinned Go module (tests/helm/go) into $SENSEOPS_CACHE/bin/helm; a no-op when built.
# The ldflags are the ones helm's own Makefile sets, so `helm version` and the Kubernetes version that
# `helm lint`/`helm template` assume (the client-go minor the module was built with) are real.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
HELM_VERSION=v3.22.0
client_go="$(cd "$here/go" && GOTOOLCHAIN=local go list -m -f '{{.Version}}' k8s.io/client-go)"  # v0.37.0
k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
"$repo/scripts/build-go-bins.sh" "$here/go" --ldflags "$ldflags" helm=helm.sh/helm/v3/cmd/helm
