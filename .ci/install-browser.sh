#!/usr/bin/env bash
# CI: the browser tests (tests/browser) drive the machine's Chromium from Debian packages;
# Playwright never downloads a browser of its own. Installs `chromium` and
# `chromium-driver` when /usr/bin/chromium is missing; does nothing otherwise.
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: $CHROMIUM is missing and apt-get is not available: install Chromium" \
       "(Debian packages chromium, chromium-driver) or set CHROMIUM_PATH" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "installing chromium and chromium-driver (Debian packages)"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
  chromium chromium-driver
"$CHROMIUM" --version
