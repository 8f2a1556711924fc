"""Diffuse to Choose training as nodes: a paired dataset folder, and the adapter trainer (trainer.py)."""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ...models.common.datasets import LAYOUTS, scan_pairs
from ...models.common.perceptual import read_weight_file, vgg16_features
from ...models.common.train_loop import checkpoint_path, output_path
from ...models.common.train_masks import MASK_MODES
from ..common.model_folders import EXEMPLAR_FOLDER, VGG_FOLDER, model_file
from ..common.output_names import check_output_name
from ..common.types import ExemplarAdapterType, ExemplarPairDatasetType
from .nodes import CATEGORY, _require_adapter
from .trainer import TRAINABLE, DtCSettings, save_checkpoint, train_dtc
from ..common.finite import require_finite
from ..common.exemplar_files import files_of_kind
from ...models.diffuse_to_choose.adapter import KIND as ADAPTER_KIND
from ..common import training_inputs as inputs

NONE = inputs.NONE


def dataset_folder(folder: str) -> Path:
    path = Path(folder_paths.get_input_directory()) / folder
    if not folder or folder == NONE or not path.is_dir():
        raise ValueError(f"folder: expected a subfolder of ComfyUI's input folder holding the dataset, got {folder!r}")
    return path


def load_vgg(name: str):
    if name == NONE:
        return None
    path = folder_paths.get_full_path_or_raise(VGG_FOLDER, name)
    return vgg16_features(read_weight_file(path), source=name)


class DtCPairDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCPairDataset",
            display_name="Diffuse to Choose Training Pairs",
            category=CATEGORY,
            description=(
                "Scans a dataset folder of training pairs in ComfyUI's input folder: the pack's layout (images/, "
                "references/, optional masks/ and captions/, matched by name) or VITON-HD as published (image/, "
                "cloth/, cloth-mask/, agnostic-mask/). Bad samples are listed by file name and left out."
            ),
            inputs=[
                io.Combo.Input(
                    "folder",
                    options=[NONE] + folder_paths.get_input_subfolders(),
                    default=NONE,
                    tooltip="A subfolder of the input folder holding the dataset (see docs/training.md).",
                ),
                io.Combo.Input(
                    "layout",
                    options=list(LAYOUTS),
                    default="auto",
                    tooltip="auto: VITON-HD when image/ and cloth/ exist, else the pack's images/ + references/.",
                ),
            ],
            outputs=[
                ExemplarPairDatasetType.Output(display_name="dataset", tooltip="The usable pairs (read on use)."),
                io.String.Output(
                    display_name="report", tooltip="How many pairs are usable and what was left out, why."
                ),
            ],
        )

    @classmethod
    def execute(cls, folder, layout) -> io.NodeOutput:
        dataset = scan_pairs(dataset_folder(folder), layout)
        report = dataset.report()
        return io.NodeOutput(dataset, report, ui={"text": [report]})


class DtCTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCTrain",
            display_name="Train Diffuse to Choose Adapter",
            category=CATEGORY,
            is_experimental=True,
            is_output_node=True,
            description=(
                "Trains a Diffuse to Choose adapter on a dataset of pairs with the main inpainting UNet frozen: the "
                "hint path (hint CNN, UNet-encoder copy, FiLM) and the DINOv2 projection, loss = epsilon MSE + "
                "perceptual_weight x VGG16 perceptual loss. Shows loss and previews, writes checkpoints, resumes "
                "exactly; the file goes to models/exemplar/ for Load Diffuse to Choose Adapter."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="The inpainting model the adapter is for (not modified; stays frozen)."
                ),
                io.Vae.Input(
                    "vae", tooltip="Its VAE: encodes sources and masked sources, decodes for the perceptual loss."
                ),
                io.ClipVision.Input(
                    "clip_vision", tooltip="DINOv2 (giant in the paper) whose tokens the adapter projects."
                ),
                ExemplarAdapterType.Input(
                    "adapter", tooltip="The adapter to start from (Create Diffuse to Choose Adapter, or a loaded one)."
                ),
                ExemplarPairDatasetType.Input("dataset", tooltip="From Diffuse to Choose Training Pairs."),
                io.String.Input(
                    "adapter_name",
                    default="dtc/my_adapter",
                    tooltip="Output file in models/exemplar/ (.safetensors added).",
                ),
                *inputs.run_inputs(
                    1e-5,
                    "AdamW, constant (paper: 1e-5).",
                    "Training size of the source images (square).",
                    steps_tooltip="Optimizer steps (the total, also when resuming).",
                    batch_tooltip="Pairs per micro-batch (and per rank under torchrun).",
                ),
                io.Int.Input(
                    "reference_size",
                    default=224,
                    min=14,
                    max=1022,
                    step=14,
                    tooltip="DINOv2 input size: 224 gives the paper's 257 tokens.",
                ),
                inputs.choice_input(
                    "trainable",
                    TRAINABLE,
                    "all",
                    "What trains: FiLM only, + hint CNN, + UNet-encoder copy, + DINOv2 projection (all).",
                ),
                inputs.choice_input(
                    "mask_mode",
                    MASK_MODES,
                    "mixed",
                    "mixed: the given mask or its bounding box (fine_probability); given; box; irregular (Paint by "
                    "Example's).",
                ),
                inputs.probability_input(
                    "fine_probability", 0.5, "mixed mode: chance of the given (fine-grained) mask."
                ),
                inputs.probability_input(
                    "flip_probability",
                    0.5,
                    "Chance of a horizontal flip, separately for the source pair and the reference.",
                ),
                io.Float.Input(
                    "rotation_degrees",
                    default=10.0,
                    min=0.0,
                    max=180.0,
                    step=0.5,
                    tooltip="The reference is rotated by a uniform angle in +-this.",
                ),
                inputs.probability_input(
                    "condition_dropout",
                    0.1,
                    "Chance of zero reference tokens (the negative of Diffuse to Choose Image Conditioning), for "
                    "guidance.",
                ),
                io.Float.Input(
                    "perceptual_weight",
                    default=0.0,
                    min=0.0,
                    max=100.0,
                    step=0.01,
                    tooltip="Weight of the VGG16 perceptual loss (needs vgg16); 0 = off.",
                ),
                io.Combo.Input(
                    "vgg16",
                    options=[NONE] + folder_paths.get_filename_list(VGG_FOLDER),
                    default=NONE,
                    tooltip="VGG16 ImageNet weights in models/vgg/ (torchvision's vgg16-397923af.pth).",
                ),
                *inputs.schedule_inputs(
                    "pairs, masks, augmentations, noise, timesteps",
                    "Save <adapter_name>_stepNNNNNN every N steps (0 = only the final file).",
                    "Show source | hint | predicted x0 every N steps (and at the end).",
                    dtype_tooltip="Compute precision (bf16 autocast on supporting GPUs).",
                ),
                *inputs.resume_inputs(
                    files_of_kind(ADAPTER_KIND),
                    "A checkpoint this trainer wrote; training continues exactly from its step to 'steps'.",
                    checkpointing_tooltip="Recompute activations in backward: less memory, slower.",
                ),
                io.Conditioning.Input(
                    "text_conditioning",
                    optional=True,
                    tooltip=(
                        "SDXL only: a CLIP Text Encode (SDXL) conditioning whose pooled output and size values feed "
                        "the model's vector conditioning (sizes not set = the training resolution). Its text tokens "
                        "are not used: the image tokens are the context."
                    ),
                ),
            ],
            outputs=[
                ExemplarAdapterType.Output(
                    display_name="adapter", tooltip="The trained adapter (for Apply Diffuse to Choose Adapter)."
                ),
                io.String.Output(
                    display_name="adapter_name", tooltip="The written file, as Load Diffuse to Choose Adapter lists it."
                ),
                io.String.Output(display_name="losses", tooltip="Per-step loss, diffusion and perceptual terms (CSV)."),
                io.Image.Output(display_name="previews", tooltip="Source | hint | predicted x0, one row per preview."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        vae,
        clip_vision,
        adapter,
        dataset,
        adapter_name,
        steps,
        learning_rate,
        batch_size,
        grad_accumulation,
        resolution,
        reference_size,
        trainable,
        mask_mode,
        fine_probability,
        flip_probability,
        rotation_degrees,
        condition_dropout,
        perceptual_weight,
        vgg16,
        training_seed,
        training_dtype,
        checkpoint_every,
        preview_every,
        resume_from,
        gradient_checkpointing,
        text_conditioning=None,
    ) -> io.NodeOutput:
        require_finite(
            learning_rate=learning_rate,
            fine_probability=fine_probability,
            flip_probability=flip_probability,
            rotation_degrees=rotation_degrees,
            condition_dropout=condition_dropout,
            perceptual_weight=perceptual_weight,
        )
        adapter_name = check_output_name(adapter_name, "adapter_name", "dtc/my_adapter")
        _require_adapter(adapter)
        inputs.require_pairs(dataset, "Diffuse to Choose Training Pairs")
        root = folder_paths.get_folder_paths(EXEMPLAR_FOLDER)[0]
        path, listed = output_path(adapter_name, root, "adapter_name", "dtc/my_adapter")
        settings = inputs.node_settings(DtCSettings, locals())
        if perceptual_weight > 0 and vgg16 == NONE:
            raise ValueError(
                "vgg16: perceptual_weight > 0 needs VGG16 weights in models/vgg/; pick a file or set the weight to 0"
            )
        vgg = load_vgg(vgg16) if perceptual_weight > 0 else None
        resume = None if resume_from == NONE else model_file(EXEMPLAR_FOLDER, resume_from, "resume_from")

        def checkpoint(result):
            partial = save_checkpoint(checkpoint_path(path, result.step), result)
            return f"{EXEMPLAR_FOLDER}/{partial.relative_to(root).as_posix()}"

        hooks = inputs.node_hooks("Diffuse to Choose training", settings, model, checkpoint)
        result = train_dtc(
            model, vae, clip_vision, adapter, dataset, settings, vgg=vgg, resume_from=resume, **hooks,
            text_conditioning=text_conditioning,
        )
        save_checkpoint(path, result)
        last = inputs.last_loss(result.losses)
        text = f"wrote {EXEMPLAR_FOLDER}/{listed} at step {result.step} (last loss {last:.4f})"
        csv = inputs.losses_csv(result.losses, {"loss": 6, "diffusion": 6, "perceptual": 6})
        return io.NodeOutput(result.adapter, listed, csv, inputs.previews_output(result), ui={"text": [text]})


NODES = [DtCPairDataset, DtCTrain]
