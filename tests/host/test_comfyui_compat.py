"""Each branch of nodes/common/comfyui_compat.py, the other release's side simulated by a stand-in object."""

import copy
import types

import pytest
import torch

from exemplar_dev.host import pack_submodule


@pytest.fixture(scope="module")
def compat(comfy):
    return pack_submodule("nodes.common.comfyui_compat")


def recorder(name):
    calls = []

    def function(*args, **kwargs):
        calls.append((name, args, kwargs))
        return name

    return function, calls


# --- relocated functions -------------------------------------------------------------------------------------------


def test_clip_preprocess_prefers_clip_model_and_falls_back_to_clip_vision(compat):
    newer, newer_calls = recorder("clip_model")
    alias, alias_calls = recorder("clip_vision")
    image = torch.zeros(1, 8, 8, 3)
    both = (types.SimpleNamespace(__name__="comfy.clip_model", clip_preprocess=newer),
            types.SimpleNamespace(__name__="comfy.clip_vision", clip_preprocess=alias))
    assert compat.clip_preprocess(image, 4, [0.5] * 3, [0.5] * 3, crop=False, _modules=both) == "clip_model"
    assert newer_calls[0][2] == {"size": 4, "mean": [0.5] * 3, "std": [0.5] * 3, "crop": False} and not alias_calls
    older = (None, both[1])  # 0.3.75: no comfy.clip_model.clip_preprocess
    assert compat.clip_preprocess(image, 4, [0.5] * 3, [0.5] * 3, _modules=older) == "clip_vision"
    with pytest.raises(AttributeError, match="this ComfyUI has no clip_preprocess"):
        compat.clip_preprocess(image, 4, [0.5] * 3, [0.5] * 3, _modules=(types.SimpleNamespace(__name__="x"),))


def test_clip_preprocess_on_this_host_is_comfyuis_own(compat):
    import comfy.clip_vision

    image = torch.rand(2, 30, 40, 3, generator=torch.Generator().manual_seed(0))
    ours = compat.clip_preprocess(image, 16, [0.4, 0.5, 0.6], [0.2, 0.3, 0.4])
    theirs = comfy.clip_vision.clip_preprocess(image, size=16, mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.4])
    assert ours.shape == (2, 3, 16, 16) and torch.equal(ours, theirs)


def test_cast_to_prefers_model_management(compat):
    newer, _ = recorder("model_management")
    older, _ = recorder("ops")
    weight = torch.ones(2)
    mm = types.SimpleNamespace(__name__="comfy.model_management", cast_to=newer)
    ops = types.SimpleNamespace(__name__="comfy.ops", cast_to=older)
    assert compat.cast_to(weight, torch.float16, "cpu", _modules=(mm, ops)) == "model_management"
    assert compat.cast_to(weight, _modules=(types.SimpleNamespace(__name__="mm"), ops)) == "ops"
    cast = compat.cast_to(torch.ones(3, dtype=torch.float32), dtype=torch.float16, device="cpu")
    assert cast.dtype == torch.float16 and torch.equal(cast, torch.ones(3, dtype=torch.float16))


# --- training clones under Dynamic VRAM ---------------------------------------------------------------------------


class NewerPatcher:
    """clone(disable_dynamic=...) as in ComfyUI with Dynamic VRAM; the clone is dynamic unless disabled."""

    def __init__(self, dynamic=True, fail=False, stays_dynamic=False):
        self.dynamic, self.fail, self.stays_dynamic, self.asked = dynamic, fail, stays_dynamic, []

    def is_dynamic(self):
        return self.dynamic

    def clone(self, disable_dynamic=False, model_override=None):
        self.asked.append(disable_dynamic)
        if self.fail:
            raise RuntimeError("Cannot create non-dynamic delegate: cached_patcher_init is not initialized.")
        return NewerPatcher(dynamic=self.dynamic and (self.stays_dynamic or not disable_dynamic))


class OlderPatcher:
    def __init__(self):
        self.clones = 0

    def clone(self):
        self.clones += 1
        return OlderPatcher()


def test_training_clone_asks_newer_comfyui_for_a_non_dynamic_patcher(compat):
    patcher = NewerPatcher()
    clone = compat.training_clone(patcher)
    assert patcher.asked == [True] and clone.is_dynamic() is False and patcher.is_dynamic() is True
    older = OlderPatcher()
    assert isinstance(compat.training_clone(older), OlderPatcher) and older.clones == 1


def test_training_clone_errors_name_the_model_and_the_way_out(compat):
    with pytest.raises(RuntimeError, match="copy of the MODEL that ComfyUI can load without Dynamic VRAM.*core loader"):
        compat.training_clone(NewerPatcher(fail=True))
    with pytest.raises(RuntimeError, match="Dynamic VRAM clone of the MODEL; training needs resident weights"):
        compat.training_clone(NewerPatcher(stays_dynamic=True))


def test_training_clip_uses_the_clones_own_text_model(compat):
    """Newer CLIP.clone(disable_dynamic=True) keeps the original cond_stage_model beside a patcher holding a fresh
    copy: training must use the patcher's model."""
    fresh, original = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    class NewerClip:
        def __init__(self, patcher_model, dynamic=True):
            self.cond_stage_model = original
            self.patcher = types.SimpleNamespace(model=patcher_model, is_dynamic=lambda: dynamic)

        def clone(self, disable_dynamic=False):
            return NewerClip(fresh if disable_dynamic else original, dynamic=not disable_dynamic)

    clone = compat.training_clip(NewerClip(original))
    assert compat.clip_model(clone) is fresh and clone.cond_stage_model is original


def test_training_clone_on_this_host_shares_the_model(compat, tiny_sd15):
    model, clip, _ = tiny_sd15
    clone = compat.training_clone(model)
    assert clone is not model and clone.model is model.model and not compat.is_dynamic(clone)
    text = compat.training_clip(clip)
    assert text is not clip and compat.clip_model(text) is clip.cond_stage_model


def test_unload_and_wrapper_removal_leave_the_original_as_it_was(compat, tiny_sd15):
    import comfy.model_management

    training = pack_submodule("nodes.common.training")
    model = tiny_sd15[0]
    clone = compat.training_clone(model)
    with torch.inference_mode(False):
        wrappers = training.differentiable_frozen_weights(clone)
    comfy.model_management.load_models_gpu([clone], force_full_load=True)
    assert any(entry.model is clone for entry in comfy.model_management.current_loaded_models)
    wrapped = [m for m in clone.model.modules() if any(w in getattr(m, "weight_function", []) for w in wrappers)]
    assert len(wrapped) > 10
    training.release(clone, wrappers)
    assert not any(entry.model is clone for entry in comfy.model_management.current_loaded_models)
    ours = {id(w) for w in wrappers}
    left = [f for m in model.model.modules() for a in ("weight_function", "bias_function") for f in getattr(m, a, [])]
    assert not [f for f in left if id(f) in ours]


def test_training_refuses_weights_left_off_the_load_device(comfy):
    training = pack_submodule("nodes.common.training")
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2, device="meta"))
    patcher = types.SimpleNamespace(model=model, load_device=torch.device("cpu"))
    with pytest.raises(RuntimeError, match=r"MODEL: 2 weights stayed off the load device cpu .*1\.weight on meta"):
        training.check_on_load_device(patcher, "MODEL")
    resident = types.SimpleNamespace(model=torch.nn.Linear(2, 2), load_device=torch.device("cpu"))
    assert training.check_on_load_device(resident, "MODEL") == torch.device("cpu")


# --- gradient checkpointing ---------------------------------------------------------------------------------------


def test_gradient_checkpointing_patches_and_restores_through_the_helpers(compat):
    events = []
    blocks = [torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)]
    helpers = types.SimpleNamespace(
        find_all_highest_child_module_with_forward=lambda model: blocks,
        patch=lambda m: events.append(("patch", m)),
        unpatch=lambda m: events.append(("unpatch", m)),
    )
    with pytest.raises(KeyError):
        with compat.gradient_checkpointing(object(), True, _module=helpers) as found:
            assert found == blocks and [e[0] for e in events] == ["patch", "patch"]
            raise KeyError("inside")
    assert [e[0] for e in events] == ["patch", "patch", "unpatch", "unpatch"]
    with compat.gradient_checkpointing(object(), False, _module=helpers) as found:
        assert found == []
    with pytest.raises(RuntimeError, match="no per-block checkpointing helpers; turn it off"):
        with compat.gradient_checkpointing(object(), True, _module=types.SimpleNamespace()):
            pass


def test_gradient_checkpointing_with_comfyuis_helpers_keeps_values_and_gradients(compat):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    with torch.inference_mode(False):
        plain = net(x).square().sum()
        plain.backward()
        plain_grads = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        with compat.gradient_checkpointing(net) as blocks:
            assert len(blocks) == 3 and all(hasattr(b, "org_forward") for b in blocks)
            checked = net(x).square().sum()
            checked.backward()
    assert torch.equal(plain, checked)
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), plain_grads))
    assert not any(hasattr(b, "org_forward") for b in net)


# --- clone() and model_options --------------------------------------------------------------------------------------


def copy_dicts_and_lists(value):
    """What newer ModelPatcher.clone() does to model_options (comfy.utils.deepcopy_list_dict)."""
    if isinstance(value, dict):
        return {k: copy_dicts_and_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_dicts_and_lists(v) for v in value]
    return value


def patch_objects(model_options):
    found = []
    options = model_options.get("transformer_options", {})
    for patches in options.get("patches", {}).values():
        found += [getattr(p, "__self__", p) for p in patches]
    for replaced in options.get("patches_replace", {}).values():
        found += list(replaced.values())
    return found


def test_patch_objects_are_shared_by_clones_under_both_clone_behaviours(compat, tiny_sd15, tiny_inpaint):
    adapter_patch = pack_submodule("nodes.diffuse_to_choose.adapter_patch")
    attention = pack_submodule("nodes.dreaminpainter.reference_attention")
    adapter = adapter_patch.create_adapter(tiny_inpaint[0], image_dim=32, seed=0)
    dtc, injection = adapter_patch.apply_adapter(tiny_inpaint[0], adapter, torch.rand(1, 64, 64, 3), None, 1.0)
    tokens = torch.randn(1, 4, 320, generator=torch.Generator().manual_seed(1))
    reference = attention.patch_reference_attention(tiny_sd15[0], tokens, 1.0, 0.0, 1.0, False)
    for patched, kind in ((dtc, adapter_patch.DtCInjection), (reference, attention.ReferenceAttn1)):
        objects = patch_objects(patched.model_options)
        assert objects and all(isinstance(o, kind) and isinstance(o, compat.SharedOnClone) for o in objects)
        deep = patch_objects(patched.clone().model_options)  # this host's clone: copy.deepcopy
        shallow = patch_objects(copy_dicts_and_lists(patched.model_options))  # newer clone
        assert [id(o) for o in deep] == [id(o) for o in objects] == [id(o) for o in shallow]
    assert patch_objects(dtc.model_options)[0] is injection
    assert copy.deepcopy(injection) is injection


# --- the in-process executor --------------------------------------------------------------------------------------


def test_executor_cache_args_serve_both_releases(compat, comfy):
    args = compat.EXECUTOR_CACHE_ARGS

    class NewerExecutor:  # reads the headrooms as newer execution.PromptExecutor.execute_async does
        def __init__(self, cache_args):
            self.ram = int(cache_args["ram"] * 1024**3)
            self.ram_inactive = int(cache_args["ram_inactive"] * 1024**3)

    assert (NewerExecutor(args).ram, NewerExecutor(args).ram_inactive) == (0, 0)
    executor = comfy.execution.PromptExecutor(
        types.SimpleNamespace(client_id=None, last_node_id=None, send_sync=lambda *a: None),
        cache_type=comfy.execution.CacheType.CLASSIC,
        cache_args=dict(args),
    )
    assert executor.cache_args["ram"] == 0 and executor.cache_args["lru"] == 0
