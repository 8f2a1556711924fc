"""Boot a real ComfyUI in this process (CPU), load this pack through ComfyUI's own loader, run prompts.

Order matters (docs/development.md, In-process ComfyUI): cli args before comfy.model_management is imported,
`utils.extra_config` before `nodes`, and this checkout's root never on sys.path (its `nodes/`
package would shadow ComfyUI's `nodes.py`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from types import SimpleNamespace

import cli_boot  # scripts/, on sys.path wherever exemplar_dev is importable

from .paths import BASE_DIR, PACK_FOLDER_NAME, comfyui_dir

_booted = None


class _SilentServer:
    """The slice of PromptServer that PromptExecutor talks to."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


def boot(pytorch_attention: bool = False):
    """Import ComfyUI once, on the CPU, with the pack loaded from BASE_DIR/custom_nodes. Returns a namespace.

    `pytorch_attention` only counts on the first call (ComfyUI picks its attention when it is imported).
    """
    global _booted
    if _booted is not None:
        return _booted
    cli_boot.boot_comfyui(comfyui_dir(), cpu=True, base_directory=BASE_DIR, pytorch_attention=pytorch_attention)
    from comfy.cli_args import args

    args.disable_all_custom_nodes = False

    import folder_paths
    import nodes
    import execution

    # torchaudio cannot be had for this host: ComfyUI's audio nodes fail to import, loudly; quiet that.
    logging.getLogger().setLevel(logging.ERROR)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    logging.getLogger().setLevel(logging.WARNING)
    pack_module = _loaded_pack_module()
    if pack_module is None:
        raise RuntimeError(
            f"ComfyUI did not load the pack from {BASE_DIR / 'custom_nodes' / PACK_FOLDER_NAME}; "
            "see the log above for the import error"
        )
    _booted = SimpleNamespace(nodes=nodes, execution=execution, folder_paths=folder_paths, pack=pack_module)
    return _booted


def _loaded_pack_module():
    for name, module in list(sys.modules.items()):
        if name.endswith("custom_nodes/" + PACK_FOLDER_NAME) or name.endswith("custom_nodes\\" + PACK_FOLDER_NAME):
            return module
    return None


def pack_submodule(dotted: str):
    """A submodule of the pack as ComfyUI loaded it (e.g. "models.hint_image"), so classes are shared."""
    import importlib

    host = boot()
    return importlib.import_module(f"{host.pack.__name__}.{dotted}")


class PromptFailed(RuntimeError):
    pass


def run_prompt(prompt: dict) -> dict:
    """Validate and execute an API-format prompt; returns {node_id: ui_output}. Raises PromptFailed."""
    host = boot()
    prompt_id = str(uuid.uuid4())
    valid = asyncio.run(host.execution.validate_prompt(prompt_id, prompt, None))
    if not valid[0]:
        raise PromptFailed(f"prompt rejected: {valid[1]} {valid[3]}")
    server = _SilentServer()
    executor = host.execution.PromptExecutor(
        server,
        cache_type=host.execution.CacheType.CLASSIC,
        cache_args=dict(pack_submodule("nodes.common.comfyui_compat").EXECUTOR_CACHE_ARGS),
    )
    executor.execute(prompt, prompt_id, {}, valid[2])
    if not executor.success:
        errors = [data for event, data in executor.status_messages if event == "execution_error"]
        detail = (
            f"{errors[0]['node_type']} (node {errors[0]['node_id']}): "
            f"{errors[0]['exception_type']}: {errors[0]['exception_message']}"
            if errors
            else executor.status_messages
        )
        raise PromptFailed(f"execution failed: {detail}")
    return {node: result.get("output", result) for node, result in executor.history_result["outputs"].items()}
