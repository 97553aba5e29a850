#!/usr/bin/env bash
# Makes sure Debian's nginx (/usr/sbin/nginx) exists for the load-balancer test
# and `npm run cluster` (installed with apt-get when missing). Both start their
# own nginx with a generated configuration on a free port, so the package's own
# service (port 80) is neither needed nor started by us.
set -euo pipefail
if [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "nginx is missing and apt-get is not available: install nginx (/usr/sbin/nginx)" >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; else
    echo "nginx is missing; run as root or install it: apt-get install nginx" >&2
    exit 1
  fi
fi
echo "Installing Debian's nginx…" >&2
export DEBIAN_FRONTEND=noninteractive
# Containers have no init system: policy-rc.d keeps the package from starting its service on port 80.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
  $sudo_cmd chmod +x /usr/sbin/policy-rc.d
  trap '$sudo_cmd rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
# nginx-light would do, but `nginx` is the package operators install; it brings the upstream and proxy modules we use.
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends nginx >/dev/null
test -x /usr/sbin/nginx
