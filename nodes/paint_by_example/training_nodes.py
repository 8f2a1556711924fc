"""Paint by Example fine-tuning as a node (trainer.py): dataset pairs from DtC Training Pairs, a checkpoint out."""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ...models.common.train_loop import checkpoint_path, output_path
from ...models.common.train_masks import MASK_MODES
from ..common.model_folders import model_file
from ..common.finite import require_finite
from ..common.output_names import check_output_name
from ..common.types import ExemplarEncoderType, ExemplarPairDatasetType
from ..common import training_inputs as inputs
from . import loader
from .trainer import REFERENCE_SOURCES, TRAINABLE, PbESettings, save_checkpoint, train_pbe

NONE = inputs.NONE
EXAMPLE = "pbe/my_finetune"


class PbETrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarPbETrain",
            display_name="Fine-tune Paint by Example",
            category="exemplar/paint_by_example",
            is_output_node=True,
            description=(
                "Fine-tunes a Paint-by-Example model on a dataset of pairs with the official recipe (20 % learnable "
                "vector, reference augmentation, irregular Bezier masks; epsilon MSE): a LoRA on the UNet, the "
                "encoder head and the learnable vector by default. Shows loss and previews, writes checkpoints, "
                "resumes exactly; writes a Paint-by-Example checkpoint to models/checkpoints for the PbE loader."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The Paint-by-Example MODEL (Load Paint-by-Example Checkpoint)."),
                io.Vae.Input("vae", tooltip="Its VAE (frozen): encodes sources and masked sources."),
                ExemplarEncoderType.Input("exemplar_encoder", tooltip="Its exemplar encoder (CLIP tower frozen)."),
                ExemplarPairDatasetType.Input("dataset", tooltip="From DtC Training Pairs (the same dataset layouts)."),
                io.String.Input(
                    "ckpt_name", default=EXAMPLE, tooltip="Output file in models/checkpoints (.safetensors added)."
                ),
                *inputs.run_inputs(1e-5, "AdamW (official: 1e-5).", "Training size (square; official 512)."),
                inputs.choice_input(
                    "trainable",
                    TRAINABLE,
                    "lora+head+vector",
                    "What trains: a UNet LoRA, the encoder head (mapper, final_ln, proj_out), the vector.",
                ),
                *inputs.lora_inputs(),
                inputs.choice_input(
                    "mask_mode",
                    MASK_MODES,
                    "irregular",
                    "irregular: the official extended box or 4-Bezier polygon (50/50); given; box; mixed.",
                ),
                inputs.choice_input(
                    "reference_source",
                    REFERENCE_SOURCES,
                    "reference",
                    "reference: the pair's reference image; image_box: the image cropped to the mask's box "
                    "+ 10 px (the official self-reference).",
                ),
                inputs.probability_input(
                    "reference_dropout", 0.2, "Chance of the learnable vector instead of the reference."
                ),
                inputs.probability_input("flip_probability", 0.5, "Chance of a horizontal flip of the reference."),
                io.Float.Input(
                    "rotation_degrees",
                    default=20.0,
                    min=0.0,
                    max=180.0,
                    step=0.5,
                    tooltip="The reference is rotated by a uniform angle in +-this (official 20).",
                ),
                inputs.probability_input("blur_probability", 0.3, "Chance of a Gaussian blur of the reference."),
                inputs.probability_input("elastic_probability", 0.3, "Chance of an elastic warp of the reference."),
                *inputs.schedule_inputs(
                    "pairs, masks, augmentations, noise, timesteps",
                    "Save <ckpt_name>_stepNNNNNN every N steps (0 = only the final file).",
                    "Show masked source | reference | predicted x0 every N steps (and at the end).",
                ),
                *inputs.resume_inputs(
                    folder_paths.get_filename_list("checkpoints"),
                    "A checkpoint this trainer wrote (same base model); training continues exactly.",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The fine-tuned model, loaded from the written file."),
                ExemplarEncoderType.Output(display_name="exemplar_encoder", tooltip="The fine-tuned encoder."),
                io.String.Output(display_name="ckpt_name", tooltip="The written file, as the PbE loader lists it."),
                io.String.Output(display_name="losses", tooltip="Per-step loss (CSV)."),
                io.Image.Output(display_name="previews", tooltip="Masked source | reference | predicted x0."),
            ],
        )

    @classmethod
    def execute(cls, model, vae, exemplar_encoder, dataset, ckpt_name, resume_from, **values) -> io.NodeOutput:
        require_finite(**{k: v for k, v in values.items() if isinstance(v, float)})
        ckpt_name = check_output_name(ckpt_name, "ckpt_name", EXAMPLE)
        if not isinstance(exemplar_encoder, loader.PbEExemplarEncoder):
            raise ValueError(
                f"exemplar_encoder is a {type(exemplar_encoder).__name__}; expected the Paint-by-Example encoder"
            )
        inputs.require_pairs(dataset)
        path, listed = output_path(ckpt_name, folder_paths.get_folder_paths("checkpoints")[0], "ckpt_name", EXAMPLE)
        settings = inputs.node_settings(PbESettings, values)
        resume = None if resume_from == NONE else model_file("checkpoints", resume_from, "resume_from")
        root = Path(folder_paths.get_folder_paths("checkpoints")[0])

        def checkpoint(result):
            step_path = Path(checkpoint_path(path, result.step))
            save_checkpoint(step_path, model, vae, result)
            return f"checkpoints/{step_path.relative_to(root).as_posix()}"

        loading = "loading the model, VAE and exemplar encoder for training"
        hooks = inputs.node_hooks("Paint by Example fine-tuning", settings, model, checkpoint, loading)
        result = train_pbe(model, vae, exemplar_encoder, dataset, settings, resume_from=resume, **hooks)
        save_checkpoint(path, model, vae, result)
        tuned_model, _vae, tuned_encoder = loader.load_checkpoint(path)
        csv = inputs.losses_csv(result.losses, {"loss": 6})
        text = f"wrote checkpoints/{listed} at step {result.step} (last loss {inputs.last_loss(result.losses):.4f})"
        previews = inputs.previews_output(result)
        return io.NodeOutput(tuned_model, tuned_encoder, listed, csv, previews, ui={"text": [text]})


NODES = [PbETrain]
