#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test tier if it is missing (never a browser download
# at run time). Playwright itself comes from requirements-dev.txt and drives /usr/bin/chromium.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "[setup-browser] chromium is missing and this user cannot install it (apt-get install chromium)" >&2; exit 1; }
  sudo=sudo
fi
echo "[setup-browser] installing Debian's chromium" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
