#!/usr/bin/env bash
# Builds Go main packages from a pinned wrapper module into the machine cache and links .bin/ to it.
#
#   scripts/build-go-bins.sh MODULE_DIR [--ldflags FLAGS] [--tags TAGS] NAME=PACKAGE [NAME=PACKAGE ...]
#
# MODULE_DIR is a folder with a go.mod/go.sum that pins PACKAGE (see tests/controlplane/go/*).
# Each binary lands in $SENSEOPS_CACHE/bin/NAME (default ~/.cache/senseops/bin). A binary is rebuilt
# only when its key changes: the key hashes the Go version, go.mod, go.sum, the ldflags, the build
# tags and the package, and is stored in $SENSEOPS_CACHE/bin/.keys/NAME. Builds run under
# `nice -n 10` and a lock, so concurrent callers wait for each other instead of building twice.
# Before anything else the machine's Go is checked against the module's `go` line, so a too-old Go
# fails at once with what to do instead of deep inside a build.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SENSEOPS_CACHE:-$HOME/.cache/senseops}"
bindir="$cache/bin"
keydir="$bindir/.keys"

usage="usage: $0 MODULE_DIR [--ldflags FLAGS] [--tags TAGS] NAME=PACKAGE..."
[[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
moddir="$(cd "$1" && pwd)"; shift
ldflags="" tags=""
while [[ ${1-} == --* ]]; do
  case $1 in
    --ldflags) ldflags="$2"; shift 2 ;;
    --tags) tags="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[[ $# -ge 1 ]] || { echo "$usage" >&2; exit 2; }

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED="${CGO_ENABLED:-0}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
command -v go >/dev/null || { echo "error: go not found on PATH (Debian package golang-go or a Go >= 1.26 toolchain)" >&2; exit 1; }
"$repo/scripts/ensure-go-version.sh" "$moddir"

mkdir -p "$keydir"
# .bin/ in the repository points at the machine cache. An empty real folder there is replaced by the
# link; one with files in it is left alone (with a warning) so nothing is lost.
if [[ -d $repo/.bin && ! -L $repo/.bin ]]; then rmdir "$repo/.bin" 2>/dev/null || true; fi
if [[ -L $repo/.bin || ! -e $repo/.bin ]]; then
  ln -sfn "$bindir" "$repo/.bin"
else
  echo "warning: $repo/.bin is a folder with files, not a link to $bindir; left as is" >&2
fi

key_for() {  # key_for PACKAGE -> hash that changes whenever the binary would
  # The tags line is only there when tags are, so keys of binaries built without tags stay as they were.
  { go version; go env GOOS GOARCH CGO_ENABLED; cat "$moddir/go.mod" "$moddir/go.sum"; echo "$ldflags"; echo "$1"
    [[ -z $tags ]] || echo "tags=$tags"; } \
    | sha256sum | cut -c1-32
}

exec 9>"$bindir/.build.lock"
flock 9
stale_names=(); stale_pkgs=()
for spec in "$@"; do
  name="${spec%%=*}"; pkg="${spec#*=}"
  if [[ -x $bindir/$name && -f $keydir/$name && $(cat "$keydir/$name") == "$(key_for "$pkg")" ]]; then
    continue
  fi
  stale_names+=("$name"); stale_pkgs+=("$pkg")
done
if [[ ${#stale_names[@]} -eq 0 ]]; then
  echo "==> up to date in $bindir: ${*%%=*}"
  exit 0
fi

tmp="$(mktemp -d "$bindir/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "==> building ${stale_names[*]} from $moddir (this can take many minutes the first time)"
start=$SECONDS
# One `go build` per package keeps the output names ours; the build cache shares the common work.
for i in "${!stale_names[@]}"; do
  (cd "$moddir" && nice -n 10 go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/${stale_names[$i]}" "${stale_pkgs[$i]}")
  mv -f "$tmp/${stale_names[$i]}" "$bindir/${stale_names[$i]}"
  key_for "${stale_pkgs[$i]}" >"$keydir/${stale_names[$i]}"
  echo "    built ${stale_names[$i]} ($((SECONDS - start))s so far)"
done
echo "==> built ${stale_names[*]} in $((SECONDS - start))s"
