#!/usr/bin/env bash
# Makes sure redis-server exists for the cluster tests (installed with apt-get
# when missing). The tests start their own throwaway server on a free port, so
# the package's own service is neither needed nor started by us.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "redis-server is missing and apt-get is not available: install Redis (redis-server on the PATH)" >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; else
    echo "redis-server is missing; run as root or install it: apt-get install redis-server" >&2
    exit 1
  fi
fi
echo "Installing Debian's redis-server for the cluster tests…" >&2
export DEBIAN_FRONTEND=noninteractive
# Containers have no init system: policy-rc.d keeps the package from starting its service.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
  $sudo_cmd chmod +x /usr/sbin/policy-rc.d
  trap '$sudo_cmd rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server >/dev/null
