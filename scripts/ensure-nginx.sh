#!/usr/bin/env bash
# Makes sure Debian's nginx (/usr/sbin/nginx) exists for the load-balancer test
# and `npm run cluster` (installed with apt-get when missing). Both start their
# own nginx with a generated configuration on a free port, so the package's own
# service (port 80) is neither needed nor started.
set -euo pipefail
if [ -x /usr/sbin/nginx ]; then
  exit 0
fi
# nginx-light would do, but `nginx` is the package operators install; it brings the upstream and proxy modules we use.
bash "$(dirname "$0")/apt-install.sh" --for "the load-balancer test" --hint "install nginx (/usr/sbin/nginx)" --no-recommends nginx
test -x /usr/sbin/nginx
