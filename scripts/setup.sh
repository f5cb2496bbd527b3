#!/usr/bin/env bash
# Create .venv in the repository and install clipseek with everything its tests need.
# torch is pinned here (a CPU wheel); the package itself only requires torch>=2.4.
set -euo pipefail
cd "$(dirname "$0")/.."
# The web page's end-to-end test drives Debian's Chromium: install it when missing and we can.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium </dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
