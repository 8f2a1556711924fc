"""What the pack assumes of ComfyUI, one test per assumption (docs/compatibility.md lists them).

Each failure message starts "ComfyUI changed:" and names the assumption and the pack code that rests on it, so a
new ComfyUI release that breaks one says where to look.
"""

import inspect
import re
from pathlib import Path

import pytest
import torch

from exemplar_dev.host import pack_submodule

PACK = Path(__file__).resolve().parents[2]


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_token_lists_hold_embedding_tensors(tiny_sd15):
    """DreamStyler's staged encode puts stage vectors into ComfyUI's token lists (nodes/dreamstyler/staged_encoding)."""
    clip = tiny_sd15[1]
    _, inner = pack_submodule("nodes.common.training").inner_clip(clip)
    tokens = clip.tokenize("a photo of a dog")
    key = next(iter(tokens))
    table = inner.transformer.get_input_embeddings().weight
    swapped = [list(chunk) for chunk in tokens[key]]
    dog = swapped[0][5][0]
    swapped[0][5] = (table[dog].detach().float().clone(),) + tuple(swapped[0][5][1:])
    plain = clip.encode_from_tokens(tokens, return_pooled=True)
    with_tensor = clip.encode_from_tokens({**tokens, key: swapped}, return_pooled=True)
    assert torch.equal(plain[0], with_tensor[0]) and torch.equal(plain[1], with_tensor[1]), (
        "ComfyUI changed: a token list entry holding an embedding tensor no longer encodes like the id it stands "
        "for (staged_encoding.tokenize_with_vectors, the DreamStyler trainer's text encoder)"
    )


def test_sub_tokenizers_expose_size_key_and_tokenize(tiny_sd15, comfy):
    clip = tiny_sd15[1]
    staged_encoding = pack_submodule("nodes.dreamstyler.staged_encoding")
    subs = [v for v in vars(clip.tokenizer).values() if hasattr(v, "embedding_size")]
    assert subs and all(
        isinstance(s.embedding_size, int) and isinstance(s.embedding_key, str) and callable(s.tokenize_with_weights)
        for s in subs
    ), "ComfyUI changed: SDTokenizer.embedding_size / embedding_key / tokenize_with_weights (staged_encoding.check_dim)"
    empty = {t for t, _ in clip.tokenize("")["l"][0]}
    marker = [t for t, _ in clip.tokenize(staged_encoding.MARKER_WORDS[0])["l"][0] if t not in empty]
    assert len(marker) == 1, "ComfyUI changed: the CLIP tokenizer splits the staged encode's marker word"


def test_v3_api_has_every_name_the_pack_uses(comfy):
    from comfy_api.latest import ComfyExtension, io

    used = set()
    for path in (PACK / "nodes").rglob("*.py"):
        used.update(re.findall(r"\bio\.([A-Z][A-Za-z]*)", path.read_text()))
    assert len(used) > 10
    missing = sorted(name for name in used if not hasattr(io, name))
    assert not missing, f"ComfyUI changed: comfy_api.latest.io lacks {missing} (the pack's node schemas)"
    assert inspect.isclass(ComfyExtension), "ComfyUI changed: comfy_api.latest.ComfyExtension (the pack's __init__)"


def test_model_patcher_hooks_the_patches_use(tiny_sd15):
    model = tiny_sd15[0]
    needed = ("add_weight_wrapper", "set_model_output_block_patch", "set_model_attn1_replace", "set_model_patch",
              "add_wrapper_with_key", "remove_wrappers_with_key", "set_additional_models",
              "get_additional_models_with_key", "get_model_object", "set_model_compute_dtype")
    missing = [name for name in needed if not callable(getattr(model, name, None))]
    assert not missing, f"ComfyUI changed: ModelPatcher lacks {missing} (DtC, reference attention, trainers)"
    import comfy.patcher_extension

    assert comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL == "diffusion_model", (
        "ComfyUI changed: the diffusion-model wrapper key (nodes/diffuse_to_choose/adapter_patch)"
    )


def test_weight_wrappers_reach_the_layers_and_a_full_load_keeps_weights_on_the_device(tiny_sd15):
    import comfy.model_management

    compat = pack_submodule("nodes.common.comfyui_compat")
    training = pack_submodule("nodes.common.training")
    clone = compat.training_clone(tiny_sd15[0])
    seen = []

    def wrapper(weight):
        seen.append(weight.shape)
        return weight

    key = next(k for k, m in clone.model.named_modules() if hasattr(m, "weight_function") and m.weight is not None)
    clone.add_weight_wrapper(f"{key}.weight", wrapper)
    try:
        comfy.model_management.load_models_gpu([clone], force_full_load=True)
        layer = clone.model.get_submodule(key)
        assert wrapper in layer.weight_function, (
            "ComfyUI changed: add_weight_wrapper no longer puts the function in the layer's weight_function at load "
            "(nodes/common/training.differentiable_frozen_weights, DreamBooth's LoRA)"
        )
        assert training.check_on_load_device(clone, "MODEL") == torch.device(clone.load_device)
        entries = [e for e in comfy.model_management.current_loaded_models if e.model is clone]
        assert len(entries) == 1 and callable(entries[0].model_unload), (
            "ComfyUI changed: current_loaded_models entries with .model / .model_unload (comfyui_compat.unload)"
        )
    finally:
        training.release(clone, [wrapper])
    assert wrapper not in clone.model.get_submodule(key).weight_function


def test_clip_text_model_layout_the_training_forward_runs(tiny_sd15):
    from comfy.ldm.modules import attention

    training = pack_submodule("nodes.common.training")
    _, inner = training.inner_clip(tiny_sd15[1])
    text_model = inner.transformer.text_model
    layer = text_model.encoder.layers[0]
    assert all(hasattr(layer, n) for n in ("self_attn", "layer_norm1", "mlp", "layer_norm2")) and hasattr(
        text_model, "final_layer_norm"
    ) and hasattr(text_model.embeddings, "position_embedding"), (
        "ComfyUI changed: CLIPTextModel's layout (nodes/common/training.transformer_forward)"
    )
    assert "small_input" in parameters(attention.optimized_attention_for_device), (
        "ComfyUI changed: optimized_attention_for_device(device, mask, small_input) (training.transformer_forward)"
    )
    assert all(hasattr(inner, n) for n in ("process_tokens", "special_tokens", "reset_clip_options", "layer")), (
        "ComfyUI changed: SDClipModel.process_tokens / special_tokens / clip options (nodes/common/training)"
    )


def test_guider_and_sampling_signatures(comfy):
    import comfy.samplers

    predict_noise = parameters(comfy.samplers.CFGGuider.predict_noise)
    assert predict_noise[:5] == ["self", "x", "timestep", "model_options", "seed"], (
        "ComfyUI changed: CFGGuider.predict_noise(x, timestep, model_options, seed) (nodes/guidance/guiders)"
    )
    assert parameters(comfy.samplers.calc_cond_batch)[:5] == ["model", "conds", "x_in", "timestep", "model_options"], (
        "ComfyUI changed: calc_cond_batch(model, conds, x_in, timestep, model_options) (nodes/guidance/guiders)"
    )


def test_discrete_model_sampling(comfy):
    import comfy.model_sampling

    sampling = comfy.model_sampling.ModelSamplingDiscrete()
    assert sampling.sigmas.shape == (1000,) and callable(sampling.timestep) and callable(sampling.percent_to_sigma), (
        "ComfyUI changed: ModelSamplingDiscrete's sigmas / timestep / percent_to_sigma (DreamStyler stages, trainers)"
    )
    assert float(sampling.timestep(sampling.sigmas[999])) == 999.0


def test_trainer_checkpointing_helpers(comfy):
    import comfy_extras.nodes_train as nodes_train

    assert all(hasattr(nodes_train, n) for n in ("find_all_highest_child_module_with_forward", "patch", "unpatch")), (
        "ComfyUI changed: comfy_extras.nodes_train's checkpointing helpers (comfyui_compat.gradient_checkpointing)"
    )


def test_clip_preprocess_is_found(comfy):
    import comfy.clip_vision

    try:
        import comfy.clip_model as clip_model
    except ImportError:
        clip_model = None
    assert callable(getattr(clip_model, "clip_preprocess", None)) or callable(
        getattr(comfy.clip_vision, "clip_preprocess", None)
    ), "ComfyUI changed: clip_preprocess is in neither comfy.clip_model nor comfy.clip_vision (comfyui_compat)"


def test_folder_registry(comfy):
    import folder_paths

    paths, extensions = folder_paths.folder_names_and_paths["checkpoints"]
    assert isinstance(paths, list) and isinstance(extensions, set) and ".safetensors" in extensions, (
        "ComfyUI changed: folder_paths.folder_names_and_paths entries are ([paths], {extensions}) "
        "(comfyui_compat.register_model_folder)"
    )
    assert "exemplar" in folder_paths.folder_names_and_paths
    assert folder_paths.folder_names_and_paths["exemplar"][1] == set(folder_paths.supported_pt_extensions)


@pytest.mark.parametrize("key", ["lru", "ram"])
def test_executor_cache_args_this_host_reads(comfy, key):
    source = inspect.getsource(comfy.execution)
    assert f'cache_args["{key}"]' in source or f'cache_args.get("{key}"' in source, (
        f"ComfyUI changed: execution no longer reads cache_args[{key!r}] (comfyui_compat.EXECUTOR_CACHE_ARGS)"
    )
    assert key in pack_submodule("nodes.common.comfyui_compat").EXECUTOR_CACHE_ARGS
