#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl) exist for the store
# tests: Debian's /usr/lib/postgresql/<version>/bin, installed with apt-get when
# missing. The tests start their own throwaway cluster, so the package must not
# create (and start) a "main" cluster of its own.
set -euo pipefail
for bin in /usr/lib/postgresql/*/bin; do
  if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL is missing and apt-get is not available: install the PostgreSQL server (initdb, pg_ctl) under /usr/lib/postgresql" >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; else
    echo "PostgreSQL is missing; run as root or install it: apt-get install postgresql" >&2
    exit 1
  fi
fi
echo "Installing Debian's postgresql for the store tests…" >&2
export DEBIAN_FRONTEND=noninteractive
# postgresql-common reads createcluster.d: no main cluster, so nothing is started on port 5432.
$sudo_cmd mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $sudo_cmd tee /etc/postgresql-common/createcluster.d/tessera-no-main-cluster.conf >/dev/null
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y -qq postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
