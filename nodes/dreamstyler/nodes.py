"""DreamStyler: load a multi-stage textual-inversion embedding, encode prompts with it stage by stage,
and build the context-aware full / context-only / style-only prompts of style-and-context guidance."""

from __future__ import annotations

from pathlib import Path

import comfy.model_management
import folder_paths
from comfy_api.latest import io

from . import staged_encoding
from . import trainer as training
from ...models.dreamstyler.staged_inversion import InversionSettings
from ...models.dreamstyler import staged_embedding as se
from ...models.dreamstyler.context_prompts import (
    DEFAULT_CONTEXT_TEMPLATE,
    DEFAULT_STYLE_TEMPLATE,
    DEFAULT_TEMPLATE,
    OFFICIAL_NEGATIVE,
    context_aware_prompts,
)
from ..common.model_folders import model_file
from ..common.types import ExemplarStagedEmbeddingType
from ..common.finite import require_finite
from ...models.common.artefact_header import KIND_KEY
from ...models.common.file_probe import pickle_names_contain, safetensors_header
from ..common.progress import TrainingProgress


def _model_sampling(model):
    return None if model is None else model.get_model_object("model_sampling")


def _is_style_file(name: str) -> bool:
    path = folder_paths.get_full_path("embeddings", name)
    if path is None:
        return False
    if name.lower().endswith(".safetensors"):
        header = safetensors_header(path)
        if header is None:
            return False
        return header.metadata.get(KIND_KEY) == se.KIND or bool(header.keys) and all(map(se.is_stage_key, header.keys))
    return pickle_names_contain(path, (b"-T0",)) is not False  # a legacy (non-zip) pickle cannot be told: listed


def style_files() -> list[str]:
    """One entry per DreamStyler style in models/embeddings: the .safetensors when a style has both files (the trainer
    writes <name>.safetensors and the official <name>.bin), else the official file; other embeddings are left out."""
    names = [n for n in folder_paths.get_filename_list("embeddings") if _is_style_file(n)]
    ours = {n.rsplit(".", 1)[0] for n in names if n.lower().endswith(".safetensors")}
    return [n for n in names if n.lower().endswith(".safetensors") or n.rsplit(".", 1)[0] not in ours]


class LoadDreamStylerEmbedding(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarLoadDreamStylerEmbedding",
            display_name="Load DreamStyler Embedding",
            category="exemplar/dreamstyler",
            description=(
                "Loads a DreamStyler multi-stage textual-inversion embedding from the embeddings folder: the official "
                "file (a torch.save dict '<tok>-T0' … '<tok>-T{T-1}', read with weights_only) or the pack's "
                ".safetensors form. The number of stages T and the token are read from the file."
            ),
            inputs=[
                io.Combo.Input(
                    "embedding_name",
                    options=style_files(),
                    tooltip=(
                        "A DreamStyler style in models/embeddings: the official final.bin (renamed as you like) or a "
                        ".safetensors from the trainer. One entry per style (the .safetensors when both exist); other "
                        "embeddings are not listed."
                    ),
                ),
            ],
            outputs=[
                ExemplarStagedEmbeddingType.Output(display_name="staged_embedding"),
                io.String.Output(
                    display_name="token", tooltip="The placeholder token to write in prompts, e.g. <sks1>."
                ),
                io.Int.Output(display_name="stages", tooltip="T, the number of timestep stages."),
            ],
        )

    @classmethod
    def execute(cls, embedding_name) -> io.NodeOutput:
        path = model_file("embeddings", embedding_name, "embedding_name")
        embedding = se.load(path)
        return io.NodeOutput(embedding, embedding.token, embedding.stages)


class DreamStylerTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamStylerTextEncode",
            display_name="DreamStyler Staged Text Encode",
            category="exemplar/dreamstyler",
            description=(
                "Encodes a prompt containing the staged embedding's token once per stage and returns one CONDITIONING "
                "whose entry k is used only at the sampling steps whose model timestep t has floor(t/1000·T) = k. "
                "Exactly one entry is active per step, so sampling costs what a plain prompt costs. Works with any "
                "sampler, ControlNet and guider that takes CONDITIONING."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The CLIP of the SD1.x or SDXL model the embedding was trained for."),
                ExemplarStagedEmbeddingType.Input(
                    "staged_embedding", tooltip="From Load DreamStyler Embedding or the trainer."
                ),
                io.String.Input(
                    "text",
                    multiline=True,
                    dynamic_prompts=True,
                    default="A painting of a dog in the style of <sks1>",
                    tooltip=(
                        "The prompt; write the embedding's token (e.g. <sks1>, the loader's token output) where "
                        "the style "
                        "word goes. Weights like (<sks1>:1.2) and other embedding:name tokens work as in CLIP "
                        "Text Encode."
                    ),
                ),
                io.Model.Input(
                    "model",
                    optional=True,
                    tooltip=(
                        "Optional: the model you sample with, so stage boundaries follow its noise schedule. Leave it "
                        "unconnected for SD1.x models (the default schedule); connect it for zero-terminal-SNR "
                        "or custom schedules."
                    ),
                ),
            ],
            outputs=[io.Conditioning.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, clip, staged_embedding, text, model=None) -> io.NodeOutput:
        if clip is None:
            raise ValueError("clip is None: the checkpoint has no text encoder")
        return io.NodeOutput(staged_encoding.encode_staged(clip, text, staged_embedding, _model_sampling(model)))


def _template_inputs():
    return [
        io.String.Input(
            "caption",
            multiline=True,
            default="a dog",
            tooltip=(
                "What the picture shows (for training: what the style image shows, e.g. a BLIP-2 caption you "
                "corrected)."
            ),
        ),
        io.String.Input(
            "template",
            default=DEFAULT_TEMPLATE,
            tooltip="The full prompt: {caption} and {token} are replaced. DreamStyler's context-aware prompt.",
        ),
        io.String.Input(
            "context_template",
            default=DEFAULT_CONTEXT_TEMPLATE,
            tooltip="The context-only prompt (the full prompt without its style clause); must not contain {token}.",
        ),
        io.String.Input(
            "style_template",
            default=DEFAULT_STYLE_TEMPLATE,
            tooltip="The style-only prompt (no content): {token} is replaced.",
        ),
    ]


class DreamStylerPrompts(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamStylerPrompts",
            display_name="DreamStyler Context-Aware Prompts",
            category="exemplar/dreamstyler",
            description=(
                "Builds DreamStyler's three prompts from one caption and templates: the full prompt "
                "('A painting of {caption} in the style of {token}'), the context-only prompt (no style token) and the "
                "style-only prompt ('A painting in the style of {token}'), for style-and-context guidance."
            ),
            inputs=[
                *_template_inputs(),
                io.String.Input(
                    "token",
                    default="<sks1>",
                    tooltip=(
                        "The style token written into the prompts (ignored when staged_embedding is connected). A "
                        "plain embedding works too: embedding:name."
                    ),
                ),
                ExemplarStagedEmbeddingType.Input(
                    "staged_embedding", optional=True, tooltip="Optional: take the token from this embedding."
                ),
            ],
            outputs=[
                io.String.Output(display_name="full", tooltip="Content and style."),
                io.String.Output(display_name="context_only", tooltip="Content only (no style token)."),
                io.String.Output(display_name="style_only", tooltip="Style only."),
            ],
        )

    @classmethod
    def execute(
        cls, caption, template, context_template, style_template, token, staged_embedding=None
    ) -> io.NodeOutput:
        if staged_embedding is not None:
            token = staged_embedding.token
        if not token.strip():
            raise ValueError("token is empty: type the style token or connect staged_embedding")
        return io.NodeOutput(*context_aware_prompts(template, context_template, style_template, caption, token.strip()))


class DreamStylerStyleContextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamStylerStyleContextEncode",
            display_name="DreamStyler Style & Context Encode",
            category="exemplar/dreamstyler",
            description=(
                "One node instead of three text encoders: builds the full, context-only and style-only prompts "
                "from the "
                "caption and templates and encodes them. Full and style-only are staged (one entry per timestep "
                "stage); "
                "context-only has no style token and is a plain encode, as is the negative. Feed the four to a "
                "style-and-context guider."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The CLIP of the SD1.x or SDXL model the embedding was trained for."),
                ExemplarStagedEmbeddingType.Input(
                    "staged_embedding", tooltip="From Load DreamStyler Embedding or the trainer."
                ),
                *_template_inputs(),
                io.String.Input(
                    "negative",
                    multiline=True,
                    default=OFFICIAL_NEGATIVE,
                    tooltip="The negative prompt (the official code's default shown); plain encode.",
                ),
                io.Model.Input(
                    "model",
                    optional=True,
                    tooltip="Optional: the model you sample with, for its noise schedule (unconnected: SD1.x's).",
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="full"),
                io.Conditioning.Output(display_name="context_only"),
                io.Conditioning.Output(display_name="style_only"),
                io.Conditioning.Output(display_name="negative"),
            ],
        )

    @classmethod
    def execute(
        cls,
        clip,
        staged_embedding,
        caption,
        template,
        context_template,
        style_template,
        negative=OFFICIAL_NEGATIVE,
        model=None,
    ) -> io.NodeOutput:
        full, context, style = context_aware_prompts(
            template, context_template, style_template, caption, staged_embedding.token
        )
        sampling = _model_sampling(model)
        return io.NodeOutput(
            staged_encoding.encode_staged(clip, full, staged_embedding, sampling),
            clip.encode_from_tokens_scheduled(clip.tokenize(context)),
            staged_encoding.encode_staged(clip, style, staged_embedding, sampling),
            clip.encode_from_tokens_scheduled(clip.tokenize(negative)),
        )


class DreamStylerTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamStylerTrain",
            display_name="DreamStyler Train (Multi-Stage Textual Inversion)",
            category="exemplar/dreamstyler",
            description=(
                "Learns a DreamStyler staged embedding from one or a few style images: T copies of the token, one per "
                "timestep stage, trained with context-aware prompts while the model and the text encoder stay frozen. "
                "Writes <name>.safetensors (with metadata) and <name>.bin (the official layout) into "
                "models/embeddings. "
                "Shows progress and can be cancelled."
            ),
            is_output_node=True,
            inputs=[
                io.Model.Input(
                    "model", tooltip="The SD1.x or SDXL model (eps or v prediction) the style is learned for."
                ),
                io.Clip.Input("clip", tooltip="Its CLIP; stays frozen (only the new token vectors train)."),
                io.Vae.Input("vae", tooltip="Its VAE, to encode the style images once (and their mirror images)."),
                io.Image.Input("images", tooltip="One or a few style images of one size (the paper: 512×512)."),
                io.String.Input(
                    "captions",
                    multiline=True,
                    default="a painting",
                    tooltip="What each image shows (context-aware prompt): one line per image, or one line for all.",
                ),
                io.String.Input(
                    "token", default="<sks1>", tooltip="The new placeholder token (one word); prompts then write it."
                ),
                io.String.Input(
                    "template",
                    default=DEFAULT_TEMPLATE,
                    tooltip="Training prompt: {caption} and {token} are replaced (DreamStyler's context-aware prompt).",
                ),
                io.Int.Input(
                    "stages", default=6, min=1, max=50, tooltip="T, the number of timestep stages (paper: 6)."
                ),
                io.Int.Input("steps", default=500, min=1, max=100000, tooltip="Optimisation steps (paper: 500)."),
                io.Float.Input(
                    "learning_rate",
                    default=0.002,
                    min=1e-6,
                    max=1.0,
                    step=0.0001,
                    tooltip="AdamW learning rate, constant (paper: 0.002).",
                ),
                io.Int.Input(
                    "batch_size",
                    default=1,
                    min=1,
                    max=64,
                    tooltip="Samples per step (the official run: 8; memory grows with it).",
                ),
                io.Float.Input(
                    "flip_probability",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Chance of using an image's mirror (horizontal flip).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seeds every random draw: same seed, same embedding.",
                ),
                io.String.Input(
                    "init_word", default="painting", tooltip="Every stage starts from this word's token embedding."
                ),
                io.Int.Input(
                    "vectors_per_stage",
                    default=1,
                    min=1,
                    max=16,
                    tooltip="Vectors per stage (official: 1; more is an extension).",
                ),
                io.String.Input(
                    "name", default="dreamstyler_style", tooltip="File name (without extension) in models/embeddings."
                ),
                io.Boolean.Input(
                    "overwrite",
                    default=False,
                    tooltip="Replace existing files of that name (off: a clear error instead).",
                ),
            ],
            outputs=[
                ExemplarStagedEmbeddingType.Output(display_name="staged_embedding"),
                io.String.Output(display_name="token"),
                io.String.Output(display_name="report", tooltip="Files written and the loss at the start and the end."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        images,
        captions,
        token,
        template,
        stages,
        steps,
        learning_rate,
        batch_size,
        flip_probability,
        seed,
        init_word,
        vectors_per_stage,
        name,
        overwrite,
    ) -> io.NodeOutput:
        require_finite(learning_rate=learning_rate, flip_probability=flip_probability)
        directory = folder_paths.get_folder_paths("embeddings")[0]
        training.check_target(directory, name, overwrite)
        settings = InversionSettings(
            stages=stages,
            steps=steps,
            learning_rate=learning_rate,
            batch_size=batch_size,
            flip_probability=flip_probability,
            seed=seed,
        )
        comfy.model_management.throw_exception_if_processing_interrupted()

        def save_partial(embedding):
            partial = Path(directory) / f"{name}_step{int(embedding.metadata['steps']):06d}.safetensors"
            se.save_safetensors(embedding, partial)
            return f"embeddings/{partial.name}"

        progress = TrainingProgress("DreamStyler training", steps, save_partial=save_partial, model=model)
        embedding, losses = training.train(
            model,
            clip,
            vae,
            images,
            captions.splitlines(),
            token,
            settings,
            template,
            init_word,
            vectors_per_stage,
            progress=progress,
        )
        ours, official = training.write_files(embedding, directory, name, overwrite)
        report = f"wrote {ours.name} and {official.name}; {training.loss_summary(losses)}"
        return io.NodeOutput(embedding, embedding.token, report)


NODES = [
    LoadDreamStylerEmbedding,
    DreamStylerTextEncode,
    DreamStylerPrompts,
    DreamStylerStyleContextEncode,
    DreamStylerTrain,
]
