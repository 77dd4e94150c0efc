#!/usr/bin/env bash
# Fails early, with what to do, when the Go that will build is older than a wrapper module needs.
#
#   scripts/ensure-go-version.sh MODULE_DIR...
#
# The need is the module's `go` line (go mod tidy raises it to the highest one among the
# dependencies). With GOTOOLCHAIN=local (the build scripts' default) Go would otherwise fail late
# with "go.mod requires go >= X"; with GOTOOLCHAIN=goX.Y.Z set by the user, that toolchain is checked.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 MODULE_DIR..." >&2; exit 2; }
command -v go >/dev/null || {
  echo "error: go not found on PATH; install Go >= 1.26 (e.g. the Debian package golang-go is too old: use the official toolchain)" >&2
  exit 1
}
have="$(GOTOOLCHAIN="${GOTOOLCHAIN:-local}" go env GOVERSION)"   # e.g. go1.26.8
have="${have#go}"; have="${have%% *}"
status=0
for dir in "$@"; do
  need="$(sed -n 's/^go[[:space:]]\{1,\}\([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$dir/go.mod" | head -n1)"
  [[ -n $need ]] || { echo "error: $dir/go.mod has no 'go' line" >&2; exit 1; }
  # Oldest first: if the need does not sort first (or equal), the Go here is too old.
  if [[ $(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1) != "$need" ]]; then
    echo "error: $dir needs Go >= $need, but the Go here is $have." >&2
    echo "       Install a newer Go, or run with 'export GOTOOLCHAIN=go$need' (the Go module proxy serves that toolchain)." >&2
    status=1
  fi
done
exit $status
