#!/usr/bin/env bash
# Makes sure redis-server exists for the cluster tests (installed with apt-get
# when missing). The tests start their own throwaway server on a free port, so
# the package's own service is neither needed nor started.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" --for "the cluster tests" --hint "install Redis (redis-server on the PATH)" --no-recommends redis-server
command -v redis-server >/dev/null
