#!/usr/bin/env bash
# Makes sure a Chromium for the browser tests exists: CHROME_PATH if set,
# else Debian's /usr/bin/chromium, installed with apt-get when missing.
set -euo pipefail
browser="${CHROME_PATH:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  exit 0
fi
if [ -n "${CHROME_PATH:-}" ]; then
  echo "CHROME_PATH=$CHROME_PATH is not an executable browser" >&2
  exit 1
fi
bash "$(dirname "$0")/apt-install.sh" --for "the browser tests" --hint "install Chromium and set CHROME_PATH to it" chromium
test -x /usr/bin/chromium
