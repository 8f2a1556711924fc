#!/usr/bin/env bash
# Build the host if needed, then run the host's python from the checkout root: scripts/in_host.sh ARGS...
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup_host.sh"
cd "$root"
exec "$(cat "$root/.comfy/host_dir")/venv/bin/python" "$@"
