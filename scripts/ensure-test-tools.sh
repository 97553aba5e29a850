#!/usr/bin/env bash
# Installs, one after another, what the tests need from Debian's packages when it is missing:
# Chromium (browser tests), PostgreSQL, Redis and nginx (store and cluster tests). Run before
# vitest, whose files run in parallel: two apt-get processes at once would fight over dpkg's lock.
set -euo pipefail
cd "$(dirname "$0")"
for tool in chromium postgres redis nginx; do
  bash "ensure-$tool.sh"
done
