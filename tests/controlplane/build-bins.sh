#!/usr/bin/env bash
# Builds the pinned local control plane (etcd, kwok, kube-apiserver, kube-controller-manager,
# kube-scheduler) and kubectl, the client every target and test uses, into $SENSEOPS_CACHE/bin and
# links .bin/ to it. A no-op when already built.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
build="$repo/scripts/build-go-bins.sh"

"$build" "$here/go/etcd" etcd=go.etcd.io/etcd/server/v3
"$build" "$here/go/kwok" kwok=sigs.k8s.io/kwok/cmd/kwok

# The same version stamps Kubernetes' own build (hack/lib/version.sh) sets, so `--version` is real.
# The build date is the release's publication time, which keeps the build key stable.
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
build_date="$(cd "$here/go/kubernetes" && GOTOOLCHAIN=local go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X '$pkg.gitVersion=$KUBE_VERSION' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor'"
  ldflags+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=$build_date'"
done
"$build" "$here/go/kubernetes" --ldflags "$ldflags" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kubectl=k8s.io/kubernetes/cmd/kubectl
