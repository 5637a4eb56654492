#!/bin/sh
# Install the headless browser the dashboard and report tests drive:
# Debian's chromium and its matching chromedriver, when they are missing.
# Needs root (or sudo) and apt; does nothing when both are installed.
set -eu

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium and chromedriver are installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver
chromium --version
chromedriver --version
