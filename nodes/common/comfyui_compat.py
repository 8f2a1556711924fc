"""The one place the pack reaches into ComfyUI internals that differ between releases.

Run: ComfyUI 0.3.75. Read: newer ComfyUI (0.38.x, commits in docs/compatibility.md). Every branch below has a test
that drives it with a stand-in for the other release (tests/host/test_comfyui_compat.py); what the pack assumes
of ComfyUI itself is held by tests/host/test_comfyui_contract.py.

- `clip_preprocess`: moved to `comfy.clip_model`; `comfy.clip_vision` keeps a deprecated alias.
- `cast_to`: `comfy.model_management.cast_to`; older releases had it only in `comfy.ops`.
- `training_clone` / `training_clip`: with Dynamic VRAM a patcher streams its weights from the CPU per operation
  and a full load no longer keeps them on the device; `clone(disable_dynamic=True)` gives a classic patcher
  whose weights a full load does put on the device. Releases without Dynamic VRAM clone as before.
- `unload` / `remove_weight_wrappers`: take one training clone off the device and its weight wrappers off the
  modules it shares with the original (ComfyUI has no call for either: `unload_model_and_clones` unloads the
  whole family, and wrappers stay in the modules' weight_function lists after an unpatch).
- `gradient_checkpointing`: ComfyUI's own per-block checkpointing helpers of its LoRA trainer.
- `SharedOnClone`: 0.3.75's `ModelPatcher.clone()` deep-copies `model_options`, newer ones copy only its
  dicts and lists; a patch object deriving from it is shared by every clone under both.
- `register_model_folder`: a model folder of the pack's own, with the extensions it lists.
- `EXECUTOR_CACHE_ARGS`: the cache settings for an in-process `execution.PromptExecutor`; newer releases read
  `ram_inactive` too.
"""

from __future__ import annotations

import contextlib
import inspect

import comfy.clip_vision
import comfy.model_management
import comfy.ops

try:
    import comfy.clip_model as _clip_model
except ImportError:  # not every release has it
    _clip_model = None

EXECUTOR_CACHE_ARGS = {"lru": 0, "ram": 0, "ram_inactive": 0}


def _attribute(name: str, *modules):
    """`name` from the first of `modules` that defines it."""
    for module in modules:
        found = getattr(module, name, None) if module is not None else None
        if found is not None:
            return found
    raise AttributeError(f"this ComfyUI has no {name} (looked in {', '.join(m.__name__ for m in modules if m)})")


def clip_preprocess(image, size, mean, std, crop=True, _modules=None):
    """ComfyUI's CLIP-vision resize, crop and normalisation of an IMAGE batch -> [B, 3, size, size]."""
    function = _attribute("clip_preprocess", *(_modules or (_clip_model, comfy.clip_vision)))
    return function(image, size=size, mean=mean, std=std, crop=crop)


def cast_to(weight, dtype=None, device=None, _modules=None):
    function = _attribute("cast_to", *(_modules or (comfy.model_management, comfy.ops)))
    return function(weight, dtype=dtype, device=device)


def is_dynamic(patcher) -> bool:
    check = getattr(patcher, "is_dynamic", None)
    return bool(check()) if callable(check) else False


def _takes(function, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _non_dynamic_clone(owner, what: str):
    if not _takes(owner.clone, "disable_dynamic"):
        return owner.clone()
    try:
        clone = owner.clone(disable_dynamic=True)
    except RuntimeError as error:
        raise RuntimeError(
            f"training needs a copy of the {what} that ComfyUI can load without Dynamic VRAM, and ComfyUI could not "
            f"make one ({error}); load the {what} with a core loader node or start ComfyUI without dynamic VRAM"
        ) from error
    if is_dynamic(getattr(clone, "patcher", clone)):
        raise RuntimeError(f"ComfyUI returned a Dynamic VRAM clone of the {what}; training needs resident weights")
    return clone


def training_clone(patcher):
    """A clone of a MODEL whose weights a full load keeps on the load device (never the loaded model deep-copied)."""
    return _non_dynamic_clone(patcher, "MODEL")


def training_clip(clip):
    """A clone of a CLIP like `training_clone`; its text model is `clip.patcher.model` (see `clip_model`)."""
    return _non_dynamic_clone(clip, "CLIP")


def clip_model(clip):
    """The text model a CLIP's patcher loads (newer releases' non-dynamic clones keep the original's
    `cond_stage_model` beside a patcher holding a fresh copy)."""
    return clip.patcher.model


def unload(patcher) -> None:
    """Unload `patcher` itself (not its clones) if ComfyUI holds it loaded."""
    loaded = comfy.model_management.current_loaded_models
    for i in reversed(range(len(loaded))):
        if loaded[i].model is patcher:
            loaded.pop(i).model_unload()


def remove_weight_wrappers(model, wrappers) -> None:
    """Take `wrappers` (added with `ModelPatcher.add_weight_wrapper`) off every module of `model`."""
    ours = {id(w) for w in wrappers}
    for module in model.modules():
        for attr in ("weight_function", "bias_function"):
            functions = getattr(module, attr, None)
            if isinstance(functions, list):  # a new list: a module may still read its class's shared one
                setattr(module, attr, [f for f in functions if id(f) not in ours])


@contextlib.contextmanager
def gradient_checkpointing(model, enabled: bool = True, _module=None):
    """Per-block activation checkpointing of `model` while the block runs, ComfyUI's trainer's own way."""
    if not enabled:
        yield []
        return
    helpers = _module
    if helpers is None:
        import comfy_extras.nodes_train as helpers
    needed = ("find_all_highest_child_module_with_forward", "patch", "unpatch")
    if not all(hasattr(helpers, name) for name in needed):
        raise RuntimeError(
            "gradient_checkpointing: this ComfyUI's trainer has no per-block checkpointing helpers; turn it off"
        )
    blocks = helpers.find_all_highest_child_module_with_forward(model)
    for block in blocks:
        helpers.patch(block)
    try:
        yield blocks
    finally:
        for block in blocks:
            helpers.unpatch(block)


def register_model_folder(name: str, path: str, extensions: set[str]) -> None:
    """A new ComfyUI model folder `name` at `path` listing `extensions` (a folder already known is left as it is).

    `folder_paths.add_model_folder_path` would create it with no extensions, so every file would be listed."""
    import folder_paths

    if name not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[name] = ([path], set(extensions))


class SharedOnClone:
    """A patch object every clone of the patched MODEL shares, whether or not ComfyUI deep-copies model_options."""

    def __deepcopy__(self, memo):
        return self
