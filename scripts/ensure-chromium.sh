#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/web) when it is missing and apt can install it.
# Never fails the build: where it cannot install, it says why and the browser tests skip with that reason.
set -uo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: no apt-get on this machine: the browser tests will skip (install chromium by hand)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "ensure-chromium: not root and no password-less sudo: the browser tests will skip (apt-get install chromium)"
    exit 0
fi
echo "ensure-chromium: installing Debian's chromium for the browser tests (once per machine)"
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get install -y --no-install-recommends chromium >/tmp/ensure-chromium.log 2>&1; then
    # a fresh machine has no package lists yet
    "${as_root[@]}" apt-get update >>/tmp/ensure-chromium.log 2>&1
    if ! "${as_root[@]}" apt-get install -y --no-install-recommends chromium >>/tmp/ensure-chromium.log 2>&1; then
        echo "ensure-chromium: apt-get install chromium failed (see /tmp/ensure-chromium.log): the browser tests will skip"
        exit 0
    fi
fi
echo "ensure-chromium: $(chromium --version 2>/dev/null || echo 'chromium installed')"
