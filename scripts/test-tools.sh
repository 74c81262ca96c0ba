#!/usr/bin/env bash
# System tools the test suite runs on the deployment files, from Debian's packages (`make test` calls
# this first). Only what is missing is installed; without root or apt the tests that need a tool skip
# and say which.
#
#   haproxy     tests/deploy/test_balancer.py: `haproxy -c` and a real balancer in front of a real server
#   prometheus  tests/deploy/test_deploy_files.py: `promtool check config` and `check rules` (Debian ships
#               promtool in the prometheus package; its daemon is not started)
set -euo pipefail

missing=()
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
command -v promtool >/dev/null || missing+=(prometheus)
((${#missing[@]})) || exit 0

if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "test-tools: ${missing[*]} not installed and apt-get cannot run here (needs root): those tests will skip" >&2
  exit 0
fi
echo "test-tools: installing ${missing[*]} from Debian"
# No package may start its daemon here (no init system; the tests run their own).
created=
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created=1
fi
trap 'if [[ -n $created ]]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
