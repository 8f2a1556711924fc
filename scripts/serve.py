"""Start the ComfyUI web UI on 127.0.0.1 with this pack and the generated tiny models installed.

Usage: python scripts/serve.py [--port 8188] [extra ComfyUI arguments]
"""

import os
import sys

from exemplar_dev import assets
from exemplar_dev.paths import BASE_DIR, comfyui_dir


def main(argv):
    port = "8188"
    if "--port" in argv:
        port = argv[argv.index("--port") + 1]
        del argv[argv.index("--port") : argv.index("--port") + 2]
    from exemplar_dev import host

    host.boot()  # the tiny-model writer uses ComfyUI's model classes
    assets.prepare()
    main_py = comfyui_dir() / "main.py"
    command = [sys.executable, str(main_py), "--cpu", "--listen", "127.0.0.1", "--port", port,
               "--base-directory", str(BASE_DIR), "--database-url", "sqlite:///:memory:", *argv]
    print(f"ComfyUI with comfyui-exemplar: http://127.0.0.1:{port}", flush=True)
    os.chdir(comfyui_dir())
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main(sys.argv[1:])
