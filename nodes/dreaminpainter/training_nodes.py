"""DreamInpainter training as a node (trainer.py): token projection + learned scorer (+ UNet LoRA) from pairs."""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ...models.common.train_loop import output_path
from ...models.common.train_masks import MASK_MODES
from ..common.exemplar_files import exemplar_file_list
from ..common.finite import require_finite
from ..common.model_folders import EXEMPLAR_FOLDER, model_file
from ..common.output_names import check_output_name
from ..common.types import ExemplarPairDatasetType, ExemplarTokenProjectionType, ExemplarTokenScorerType
from ..common import training_inputs as inputs
from .trainer import TRAINABLE, DISettings, save_checkpoint, train_dreaminpainter

NONE = inputs.NONE
EXAMPLE = "dreaminpainter/my_subject"


class DreamInpainterTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamInpainterTrain",
            display_name="Train DreamInpainter Tokens",
            category="exemplar/dreaminpainter",
            is_output_node=True,
            description=(
                "Trains DreamInpainter's token projection (reference UNet tokens appended to the text context) and "
                "learned top-K scorer, optionally a UNet LoRA, on a dataset of pairs, with the decoupling "
                "regularisation (a share of samples denoise the whole image with the full caption). Shows loss and "
                "previews, writes checkpoints, resumes exactly; files for Load Token Projection / Load Token Scorer "
                "(models/exemplar) and LoraLoader (models/loras)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model to inpaint with (SD1.x; an inpainting model also works)."),
                io.Vae.Input("vae", tooltip="Its VAE (frozen)."),
                io.Clip.Input("clip", tooltip="Its CLIP (frozen): encodes the captions."),
                ExemplarPairDatasetType.Input(
                    "dataset",
                    tooltip="From DtC Training Pairs; caption files: line 1 the full caption, line 2 the subject's.",
                ),
                io.String.Input(
                    "name",
                    default=EXAMPLE,
                    tooltip="Writes <name>_projection / _scorer in models/exemplar and <name> in models/loras.",
                ),
                *inputs.run_inputs(1e-4, "AdamW.", "Training size (square)."),
                io.Int.Input(
                    "reference_resolution",
                    default=512,
                    min=64,
                    max=2048,
                    step=8,
                    tooltip="Reference square for the UNet pass (as Reference Encode (UNet features)).",
                ),
                io.String.Input("block", default="auto", tooltip="UNet block of the tokens; auto = 2nd down stage."),
                io.Int.Input("timestep", default=0, min=0, max=999, tooltip="Timestep of the reference pass (0)."),
                io.Int.Input("k", default=24, min=1, max=4096, tooltip="Tokens the scorer keeps (paper: 24)."),
                inputs.choice_input(
                    "trainable",
                    TRAINABLE,
                    "projection+scorer",
                    "What trains: the projection, + the scorer, + a UNet LoRA.",
                ),
                *inputs.lora_inputs(),
                io.Float.Input(
                    "selection_noise",
                    default=1.0,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    tooltip="Gumbel noise on the scores while training (exploration); 0 = the plain top-K.",
                ),
                io.Float.Input(
                    "selection_temperature",
                    default=1.0,
                    min=0.001,
                    max=100.0,
                    step=0.01,
                    tooltip="Temperature of the relaxed top-K the scorer's gradient comes through.",
                ),
                inputs.probability_input(
                    "decoupling_probability", 0.5, "Share of samples: whole image, full caption."
                ),
                io.String.Input(
                    "subject_caption",
                    default="",
                    tooltip="Caption of the masked region when a caption file has one line (empty = that line).",
                ),
                inputs.choice_input("mask_mode", MASK_MODES, "mixed", "mixed, given, box, irregular."),
                inputs.probability_input(
                    "fine_probability", 0.5, "mixed mode: chance of the given mask, else its box."
                ),
                inputs.probability_input("flip_probability", 0.5, "Chance of a horizontal flip of the source pair."),
                *inputs.schedule_inputs(
                    "pairs, masks, selection noise, noise, timesteps",
                    "Save <name>_stepNNNNNN files every N steps (0 = only the final files).",
                    "Show the masked source | reference | predicted x0 every N steps (and at the end).",
                ),
                *inputs.resume_inputs(
                    exemplar_file_list(),
                    "A <name>_projection file this trainer wrote (its scorer and LoRA are found by name).",
                ),
                ExemplarTokenScorerType.Input("scorer", optional=True, tooltip="Start from this scorer (else new)."),
                ExemplarTokenProjectionType.Input(
                    "projection", optional=True, tooltip="Start from this projection (else a new, zero-gated one)."
                ),
            ],
            outputs=[
                ExemplarTokenScorerType.Output(display_name="scorer", tooltip="For Top-K Token Select (learned)."),
                ExemplarTokenProjectionType.Output(
                    display_name="projection", tooltip="For Reference Cross-Attention Tokens."
                ),
                io.String.Output(display_name="lora_name", tooltip="The LoRA as LoraLoader lists it ('' if none)."),
                io.String.Output(display_name="losses", tooltip="Per-step loss and decoupled share (CSV)."),
                io.Image.Output(display_name="previews", tooltip="Masked source | reference | predicted x0."),
            ],
        )

    @classmethod
    def execute(
        cls, model, vae, clip, dataset, name, resume_from, scorer=None, projection=None, **values
    ) -> io.NodeOutput:
        require_finite(**{k: v for k, v in values.items() if isinstance(v, float)})
        name = check_output_name(name, "name", EXAMPLE)
        inputs.require_pairs(dataset)
        roots = folder_paths.get_folder_paths(EXEMPLAR_FOLDER)[0], folder_paths.get_folder_paths("loras")[0]

        def paths(stem):  # (projection file, LoRA file, LoRA name as LoraLoader lists it)
            projection_path = output_path(f"{stem}_projection", roots[0], "name", EXAMPLE)[0]
            return (projection_path, *output_path(stem, roots[1], "name", EXAMPLE))

        projection_path, lora_path, lora_name = paths(name)
        settings = inputs.node_settings(DISettings, values)
        resume, resume_lora = None, None
        if resume_from != NONE:
            resume = model_file(EXEMPLAR_FOLDER, resume_from, "resume_from")
            stem = resume_from.removesuffix(".safetensors").removesuffix("_projection")
            resume_lora = folder_paths.get_full_path("loras", f"{stem}.safetensors")

        def checkpoint(result):
            step_projection, step_lora, _ = paths(f"{name}_step{result.step:06d}")
            save_checkpoint(step_projection, result, step_lora)
            return f"{EXEMPLAR_FOLDER}/{Path(step_projection).name}"

        loading = "loading the model, VAE and text encoder for training"
        hooks = inputs.node_hooks("DreamInpainter training", settings, model, checkpoint, loading)
        resumed = {"resume_from": resume, "resume_lora": resume_lora}
        result = train_dreaminpainter(model, vae, clip, dataset, settings, scorer, projection, **resumed, **hooks)
        written = save_checkpoint(projection_path, result, lora_path)
        previews = inputs.previews_output(result)
        csv = inputs.losses_csv(result.losses, {"loss": 6, "decoupled": 3})
        listed_lora = lora_name if "lora" in written else ""
        text = f"wrote {EXEMPLAR_FOLDER}/{name}_projection / _scorer at step {result.step}"
        return io.NodeOutput(result.scorer, result.projection, listed_lora, csv, previews, ui={"text": [text]})


NODES = [DreamInpainterTrain]
