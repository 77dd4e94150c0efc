#!/usr/bin/env bash
# Makes sure Node.js >= NODE_MIN_MAJOR (default 20) is on PATH; the TypeScript client tests need it.
#
# Order of preference, each only when the previous one is missing or too old:
#   1. the node already on PATH (these machines come with Node.js 20 and npm 11);
#   2. Debian's `nodejs` package, when its candidate version is new enough (bookworm's is 18: not enough);
#   3. the npm registry's `node` package (`npm install -g node@<major>`), which installs the official
#      Node.js binary as an npm package; npm itself comes from Debian's `npm` package if missing.
set -euo pipefail
min="${NODE_MIN_MAJOR:-20}"
sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"

node_major() {  # node_major -> major version of the node on PATH, 0 when there is none
  local v; v="$(node --version 2>/dev/null || true)"; v="${v#v}"; echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}

have="$(node_major)"
if (( have >= min )); then
  exit 0
fi
echo "==> Node.js >= $min needed (found: $( ((have)) && node --version || echo none))"

apt_candidate_major() {  # major version of Debian's nodejs candidate, 0 when none
  local v; v="$(apt-cache policy nodejs 2>/dev/null | sed -n 's/^[[:space:]]*Candidate:[[:space:]]*//p')"
  v="${v#*:}"; echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
apt_install() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

$sudo apt-get update -qq
if (( $(apt_candidate_major) >= min )); then
  echo "==> installing apt's nodejs $(apt-cache policy nodejs | sed -n 's/^[[:space:]]*Candidate:[[:space:]]*//p')"
  apt_install nodejs
  command -v npm >/dev/null || apt_install npm
else
  echo "==> apt's nodejs candidate is $(apt_candidate_major).x (< $min): installing node@$min from the npm registry"
  command -v npm >/dev/null || apt_install nodejs npm
  $sudo npm install -g --no-audit --no-fund "node@$min"
  hash -r
fi
have="$(node_major)"
if (( have < min )); then
  echo "error: still no Node.js >= $min on PATH (found $(node --version 2>/dev/null || echo none) at" \
       "$(command -v node || echo nowhere)); put $(npm prefix -g 2>/dev/null || echo 'npm global prefix')/bin first on PATH" >&2
  exit 1
fi
echo "==> Node.js $(node --version) at $(command -v node)"
