#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
# the Python packages of requirements-dev.txt and Debian's Chromium for the browser tests.
# The real MLflow and MLServer servers get their own virtual environments, which the test
# fixtures build on first use (tests/servers.py) and reuse afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
echo "test dependencies installed: $(python --version), $(chromium --version 2>/dev/null | head -n 1)"
