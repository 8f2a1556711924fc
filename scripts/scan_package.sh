#!/usr/bin/env bash
# Reproduce the registry-side checks on what `comfy node publish` would upload (not run by the test suite):
# comfy-cli and nodesafe are installed into their own venvs under $SCAN_DIR (never into the host venv), the
# committed HEAD is cloned, packed with `comfy node pack` (git-tracked files minus .comfyignore), validated, and
# the extracted archive is scanned with nodesafe. Usage: bash scripts/scan_package.sh [SCAN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCAN_DIR="${1:-${TMPDIR:-/tmp}/comfyui-exemplar-scan}"
mkdir -p "$SCAN_DIR"
for tool in "comfy-cli" "nodesafe==0.6.0"; do
    venv="$SCAN_DIR/venv-${tool%%=*}"
    [ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "$tool"; }
done
rm -rf "$SCAN_DIR/clone" "$SCAN_DIR/package"
git clone -q "$ROOT" "$SCAN_DIR/clone"
cd "$SCAN_DIR/clone"
"$SCAN_DIR/venv-comfy-cli/bin/comfy" --skip-prompt --no-enable-telemetry node validate
"$SCAN_DIR/venv-comfy-cli/bin/comfy" --skip-prompt --no-enable-telemetry node pack
mkdir -p "$SCAN_DIR/package"
"$SCAN_DIR/venv-nodesafe/bin/python" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    node.zip "$SCAN_DIR/package/comfyui_exemplar"
"$SCAN_DIR/venv-nodesafe/bin/nodesafe" scan "$SCAN_DIR/package/comfyui_exemplar" --format markdown --fail-on none
