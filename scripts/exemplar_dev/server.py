"""A real ComfyUI server process (the host's main.py) with this pack, for the browser tier."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .paths import BASE_DIR, comfyui_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    def __init__(self, port: int, process: subprocess.Popen, log_path: Path):
        self.port = port
        self.process = process
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            body = response.read()
            return json.loads(body) if response.headers.get_content_type() == "application/json" else body

    def post(self, path: str, payload, timeout: float = 30):
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_server(base_dir: Path = BASE_DIR, startup_timeout: float = 120):
    """Start main.py on a free loopback port; always stop it (its whole process group) by PID.

    EXEMPLAR_FRONTEND_ROOT=<dir> serves the frontend from that folder (ComfyUI's --front-end-root) instead of the
    host's pinned comfyui-frontend-package."""
    port = free_port()
    log_path = base_dir / f"server-{port}.log"
    log = open(log_path, "w")
    command = [sys.executable, str(comfyui_dir() / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base_dir), "--database-url", "sqlite:///:memory:", "--preview-method", "none"]
    if os.environ.get("EXEMPLAR_FRONTEND_ROOT"):  # another frontend build, e.g. the newest from PyPI
        command += ["--front-end-root", os.environ["EXEMPLAR_FRONTEND_ROOT"]]
    process = subprocess.Popen(command, cwd=comfyui_dir(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = ComfyServer(port, process, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.get("/object_info/KSampler", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ComfyUI did not answer within {startup_timeout} s:\n{server.log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
