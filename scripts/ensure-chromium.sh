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
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing and apt-get is not available: install Chromium and set CHROME_PATH to it" >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; else
    echo "Chromium is missing; run as root or install it: apt-get install chromium" >&2
    exit 1
  fi
fi
echo "Installing Debian's chromium for the browser tests…" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
$sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
