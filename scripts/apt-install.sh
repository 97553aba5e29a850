#!/usr/bin/env bash
# Installs Debian packages the tests or `npm run cluster` need, with apt-get as root (or through
# sudo), without starting the packages' own services: containers have no init system, and the
# tests start their own servers on free ports. Waits for dpkg's lock rather than failing on it.
#
#   apt-install.sh --for "the cluster tests" --hint "install Redis (redis-server on the PATH)" \
#     [--no-recommends] [--file PATH CONTENT]... PACKAGE...
#
# --hint says what to do by hand when apt-get cannot run; --file writes a configuration file
# before installing (e.g. to keep postgresql-common from creating a cluster of its own).
set -euo pipefail
why="" hint="" recommends=1
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --for) why="$2"; shift 2 ;;
    --hint) hint="$2"; shift 2 ;;
    --no-recommends) recommends=0; shift ;;
    --file) files+=("$2" "$3"); shift 3 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "apt-install.sh: name at least one package" >&2
  exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$* missing and apt-get is not available: $hint" >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; else
    echo "$* missing; run as root or install it: apt-get install $*" >&2
    exit 1
  fi
fi
echo "Installing Debian's $* for $why…" >&2
export DEBIAN_FRONTEND=noninteractive
for ((i = 0; i < ${#files[@]}; i += 2)); do
  $sudo_cmd mkdir -p "$(dirname "${files[i]}")"
  echo "${files[i + 1]}" | $sudo_cmd tee "${files[i]}" >/dev/null
done
# policy-rc.d answering 101 keeps a package's maintainer scripts from starting its service.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
  $sudo_cmd chmod +x /usr/sbin/policy-rc.d
  trap '$sudo_cmd rm -f /usr/sbin/policy-rc.d' EXIT
fi
install_opts=(-y -qq)
[ "$recommends" -eq 1 ] || install_opts+=(--no-install-recommends)
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install "${install_opts[@]}" "$@" >/dev/null
