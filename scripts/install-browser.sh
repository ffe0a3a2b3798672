#!/usr/bin/env bash
# Headless Chromium for the HTML rendering tests (Debian's package; needs root or sudo). CI runs
# this (.ci/run); developers may. Without it those tests skip, unless FORGETLESS_REQUIRE_BROWSER=1.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get here; install Chromium yourself" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo -n"
echo "install-browser: installing chromium (Debian)"
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
