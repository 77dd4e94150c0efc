#!/usr/bin/env bash
# Builds the MinIO server from its Go module into the machine cache ($SENSEOPS_CACHE/bin) once per
# pinned version, and links it from the repo's ignored .bin/ folder. MinIO's go.mod has no replace
# directives, so `go install module@version` builds it exactly as released.
set -euo pipefail
cd "$(dirname "$0")/../../.."
# Pinned: the newest module version on the Go proxy when this was written (builds with Go 1.26).
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
cache="${SENSEOPS_CACHE:-$HOME/.cache/senseops}"
bin="$cache/bin"
target="$bin/minio-$MINIO_VERSION"
mkdir -p "$bin"
# .bin is the repo's (ignored) link to the machine cache; create it if no other area has yet.
[[ -e .bin ]] || ln -sfn "$bin" .bin
if [[ ! -x "$target" ]]; then
  echo "==> building MinIO $MINIO_VERSION from its Go module (several minutes on a cold cache)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # GOFLAGS may carry -mod=... from the environment; module-mode install needs none of it.
  GOFLAGS=-buildvcs=false GOBIN="$tmp" CGO_ENABLED=0 \
    nice -n 10 go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
  mv "$tmp/minio" "$target"
fi
ln -sfn "$target" "$bin/minio"
[[ -L .bin ]] || ln -sfn "$target" .bin/minio  # .bin is a real folder: link inside it too
echo "minio: .bin/minio -> $target"
