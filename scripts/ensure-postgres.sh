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
# postgresql-common reads createcluster.d: no main cluster, so nothing is started on port 5432.
bash "$(dirname "$0")/apt-install.sh" --for "the store tests" \
  --hint "install the PostgreSQL server (initdb, pg_ctl) under /usr/lib/postgresql" \
  --file /etc/postgresql-common/createcluster.d/tessera-no-main-cluster.conf "create_main_cluster = false" \
  postgresql
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
