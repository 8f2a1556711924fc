"""DreamBooth (Ruiz et al. 2022) as nodes: identifier check, class images, LoRA trainer with prior preservation."""

from __future__ import annotations

import torch
import comfy.model_management
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths
from comfy_api.latest import io

from .trainer import (
    TRAIN_DTYPES,
    DreamBoothSettings,
    PromptSet,
    class_image_folder,
    encode_images,
    generate_class_images,
    lora_output_path,
    save_checkpoint,
    supplied_class_images,
    train_dreambooth,
)
from ...models.common.train_loop import checkpoint_path
from ..common.model_folders import model_file
from ..common.output_names import check_output_name
from ...models.dreambooth.rare_token_identifier import rare_token_candidates, tokenisation
from ..common.choices import require_choice
from ..common.finite import require_finite
from ..common.progress import TrainingProgress

NO_RESUME = "none"
NO_FOLDER = "none"


def clip_tokenizer(clip):
    """The Hugging Face CLIP tokenizer inside a ComfyUI CLIP (SD1.x/2.x: the only text encoder; SDXL: CLIP-L's,
    whose vocabulary bigG shares)."""
    outer = clip.tokenizer
    inner = getattr(outer, getattr(outer, "clip", ""), None) or getattr(outer, "clip_l", None) or outer
    hf = getattr(inner, "tokenizer", None)
    if hf is None or not hasattr(hf, "get_vocab"):
        raise ValueError("clip: its tokenizer exposes no vocabulary (expected a CLIP BPE tokenizer, as in SD1.x/2.x)")
    return hf


class DreamBoothIdentifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamBoothIdentifier",
            display_name="DreamBooth Identifier",
            category="exemplar/dreambooth",
            description=(
                "Shows how an identifier tokenises with this CLIP (DreamBooth wants one rare token) and lists "
                "rare single-token candidates from the tokenizer vocabulary: word-final, 3-4 plain letters, "
                "a late BPE merge (id >= min_rank), at most one vowel, one token when typed after 'a'."
            ),
            inputs=[
                io.Clip.Input(
                    "clip", tooltip="The CLIP of the model you will train; its tokenizer decides what is one token."
                ),
                io.String.Input(
                    "identifier", default="sks", tooltip="The identifier to check ('sks' is the usual default)."
                ),
                io.Int.Input("count", default=10, min=1, max=200, tooltip="How many candidates to list, rarest first."),
                io.Int.Input(
                    "min_rank",
                    default=40000,
                    min=0,
                    max=1_000_000,
                    tooltip=(
                        "Lowest vocabulary id a candidate may have; CLIP ids follow the BPE merge order, so higher = "
                        "rarer."
                    ),
                ),
            ],
            outputs=[
                io.String.Output(
                    display_name="identifier", tooltip="The identifier, trimmed (wire into your prompts)."
                ),
                io.String.Output(display_name="tokenisation", tooltip="How the identifier tokenises, with a verdict."),
                io.String.Output(display_name="candidates", tooltip="Rare single-token candidates, one per line."),
            ],
        )

    @classmethod
    def execute(cls, clip, identifier, count, min_rank) -> io.NodeOutput:
        identifier = identifier.strip()
        if not identifier:
            raise ValueError("identifier: expected a word such as 'sks', got an empty string")
        hf = clip_tokenizer(clip)
        vocab = hf.get_vocab()

        def tokenize(text):
            return hf(text, add_special_tokens=False)["input_ids"]

        report = tokenisation(identifier, tokenize, {i: p for p, i in vocab.items()}).describe()
        candidates = rare_token_candidates(vocab, count=count, min_rank=min_rank, tokenize=tokenize)
        return io.NodeOutput(identifier, report, "\n".join(candidates), ui={"text": [report]})


class DreamBoothClassImages(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamBoothClassImages",
            display_name="DreamBooth Class Images",
            category="exemplar/dreambooth",
            description=(
                "Class images for DreamBooth's prior preservation: 'a [class noun]' drawn by the frozen base model "
                "(stock sampler, image i uses seed + i), after any images you supply; progress and cancel work."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The frozen base model (the one you will train)."),
                io.Clip.Input("clip", tooltip="Its CLIP."),
                io.Vae.Input("vae", tooltip="Its VAE, to decode the samples."),
                io.String.Input(
                    "class_noun", default="dog", tooltip="The subject's class; the prompt is 'a <class_noun>'."
                ),
                io.Int.Input(
                    "count",
                    default=200,
                    min=1,
                    max=10000,
                    tooltip="Total class images (the paper's recipe uses 100-300).",
                ),
                io.Int.Input("width", default=512, min=64, max=4096, step=8, tooltip="Image width (multiple of 8)."),
                io.Int.Input("height", default=512, min=64, max=4096, step=8, tooltip="Image height (multiple of 8)."),
                io.Int.Input("steps", default=25, min=1, max=1000, tooltip="Sampling steps per image."),
                io.Float.Input(
                    "cfg", default=7.0, min=0.0, max=100.0, step=0.1, tooltip="Classifier-free guidance scale."
                ),
                io.Combo.Input(
                    "sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler", tooltip="Sampler."
                ),
                io.Combo.Input(
                    "scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal", tooltip="Noise schedule."
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of image 0; image i uses seed + i.",
                ),
                io.Int.Input("batch_size", default=4, min=1, max=64, tooltip="Images sampled together."),
                io.String.Input("negative", default="", optional=True, tooltip="Negative prompt for the class images."),
                io.Image.Input(
                    "images",
                    optional=True,
                    tooltip="Class images you already have; only the remainder up to count is generated.",
                ),
                io.Combo.Input(
                    "folder",
                    options=[NO_FOLDER] + folder_paths.get_input_subfolders(),
                    default=NO_FOLDER,
                    optional=True,
                    tooltip=(
                        "A subfolder of ComfyUI's input folder holding class images (used after 'images'; the "
                        "remainder is generated)."
                    ),
                ),
            ],
            outputs=[
                io.Image.Output(display_name="class_images", tooltip="count images (yours first, then generated)."),
                io.String.Output(
                    display_name="class_prompt", tooltip="'a <class_noun>': wire into the trainer's class_prompt."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        class_noun,
        count,
        width,
        height,
        steps,
        cfg,
        sampler_name,
        scheduler,
        seed,
        batch_size,
        negative="",
        images=None,
        folder=NO_FOLDER,
    ) -> io.NodeOutput:
        require_finite(cfg=cfg)
        require_choice("sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS)
        require_choice("scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS)
        class_noun = class_noun.strip()
        if not class_noun:
            raise ValueError("class_noun: expected a noun such as 'dog', got an empty string")
        prompt = f"a {class_noun}"
        path = None
        input_dir = folder_paths.get_input_directory()
        if folder and folder != NO_FOLDER:
            path = class_image_folder(folder, input_dir)
        supplied = supplied_class_images(images, path, input_dir, count, width, height)
        missing = count - (supplied.shape[0] if supplied is not None else 0)
        parts = [supplied] if supplied is not None else []
        if missing > 0:
            pbar = comfy.utils.ProgressBar(missing * steps)

            def on_step(done, total):
                comfy.model_management.throw_exception_if_processing_interrupted()
                pbar.update_absolute(done, total)

            parts.append(
                generate_class_images(
                    model,
                    clip,
                    vae,
                    prompt,
                    missing,
                    width,
                    height,
                    steps,
                    cfg,
                    sampler_name,
                    scheduler,
                    seed,
                    batch_size,
                    negative,
                    on_step=on_step,
                )
            )
        return io.NodeOutput(torch.cat([p.to(comfy.model_management.intermediate_device()) for p in parts]), prompt)


class DreamBoothTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamBoothTrain",
            display_name="DreamBooth Train LoRA",
            category="exemplar/dreambooth",
            is_output_node=True,
            description=(
                "DreamBooth with prior preservation: trains a LoRA on the UNet attention projections (and optionally "
                "the CLIP text encoder) from instance images + 'a [identifier] [class noun]' and class images + "
                "'a [class noun]', loss = mse(instance) + prior_loss_weight * mse(class). Writes a kohya-layout "
                "LoRA into the loras folder (the stock Load LoRA node reads it) and outputs MODEL and CLIP with it "
                "applied, so one queue trains and samples."
            ),
            inputs=[
                io.Model.Input("model", tooltip="Base model to train on (not modified)."),
                io.Clip.Input(
                    "clip", tooltip="Its CLIP: encodes the prompts; trained too when train_text_encoder is on."
                ),
                io.Vae.Input("vae", tooltip="Its VAE: encodes the images to latents."),
                io.Image.Input("instance_images", tooltip="3-5 (or more) photos of your subject."),
                io.String.Input("instance_prompt", default="a sks dog", tooltip="'a [identifier] [class noun]'."),
                io.String.Input(
                    "class_prompt", default="a dog", tooltip="'a [class noun]' (the class images' prompt)."
                ),
                io.String.Input(
                    "lora_name",
                    default="dreambooth/sks_dog",
                    tooltip="Output file in the loras folder (.safetensors is added).",
                ),
                io.Int.Input(
                    "steps",
                    default=800,
                    min=1,
                    max=100000,
                    tooltip="Optimizer steps (paper recipe: 800 with prior preservation, 400 without).",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=1e-4,
                    min=1e-7,
                    max=1.0,
                    step=1e-6,
                    tooltip="AdamW learning rate (1e-4 is the LoRA recipe).",
                ),
                io.Int.Input("rank", default=4, min=1, max=128, tooltip="LoRA rank (4-32 typical)."),
                io.Float.Input(
                    "alpha",
                    default=4.0,
                    min=0.01,
                    max=1024.0,
                    step=0.01,
                    tooltip="LoRA alpha; the update is scaled by alpha / rank.",
                ),
                io.Float.Input(
                    "prior_loss_weight",
                    default=1.0,
                    min=0.0,
                    max=100.0,
                    step=0.01,
                    tooltip="lambda on the class half; 0 = plain fine-tune.",
                ),
                io.Int.Input(
                    "batch_size",
                    default=1,
                    min=1,
                    max=64,
                    tooltip="Instance images per micro-batch (as many class images are added).",
                ),
                io.Int.Input(
                    "grad_accumulation", default=1, min=1, max=1024, tooltip="Micro-batches per optimizer step."
                ),
                io.Boolean.Input(
                    "train_text_encoder",
                    default=False,
                    tooltip="Also train a LoRA on the CLIP text encoder's attention.",
                ),
                io.Int.Input(
                    "resolution",
                    default=512,
                    min=64,
                    max=2048,
                    step=8,
                    tooltip="Images are resized (short side) and centre-cropped to this square.",
                ),
                io.Int.Input(
                    "training_seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    tooltip="Seeds LoRA init, noise, timesteps and image order (fixed: a re-queue does not retrain).",
                ),
                io.Combo.Input(
                    "training_dtype",
                    options=list(TRAIN_DTYPES),
                    default="fp32",
                    tooltip="Compute precision (bf16 autocast on supporting GPUs).",
                ),
                io.Int.Input(
                    "checkpoint_every",
                    default=0,
                    min=0,
                    max=100000,
                    tooltip="Save <lora_name>_stepNNNNNN every N steps (0 = only the final file).",
                ),
                io.Combo.Input(
                    "resume_from",
                    options=[NO_RESUME] + folder_paths.get_filename_list("loras"),
                    default=NO_RESUME,
                    tooltip="A checkpoint this node wrote; training continues from its step to 'steps'.",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    tooltip="Recompute activations in backward: less memory, slower.",
                ),
                io.Image.Input(
                    "class_images",
                    optional=True,
                    tooltip="Class images (DreamBooth Class Images node); none = plain fine-tune.",
                ),
                io.Boolean.Input(
                    "overwrite",
                    default=False,
                    optional=True,
                    tooltip="Replace an existing LoRA of that name (off: a clear error before training).",
                ),
            ],
            outputs=[
                io.Model.Output(
                    display_name="model",
                    tooltip=(
                        "The input model with the trained LoRA applied at strength 1 (as Load LoRA would); sample "
                        "from it in the same queue. The input model itself is not changed."
                    ),
                ),
                io.Clip.Output(
                    display_name="clip",
                    tooltip="The input CLIP with the trained LoRA applied at strength 1 (unchanged without text LoRA).",
                ),
                io.String.Output(
                    display_name="lora_name",
                    tooltip="The written file, as Load LoRA lists it (for later runs or other strengths).",
                ),
                io.String.Output(display_name="losses", tooltip="Per-step loss, instance and prior terms (CSV)."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        instance_images,
        instance_prompt,
        class_prompt,
        lora_name,
        steps,
        learning_rate,
        rank,
        alpha,
        prior_loss_weight,
        batch_size,
        grad_accumulation,
        train_text_encoder,
        resolution,
        training_seed,
        training_dtype,
        checkpoint_every,
        resume_from,
        gradient_checkpointing,
        class_images=None,
        overwrite=False,
    ) -> io.NodeOutput:
        require_finite(learning_rate=learning_rate, alpha=alpha, prior_loss_weight=prior_loss_weight)
        lora_name = check_output_name(lora_name, "lora_name", "dreambooth/sks_dog")
        path, listed = lora_output_path(lora_name, folder_paths.get_folder_paths("loras")[0])
        if path.exists() and not overwrite:
            raise ValueError(f"lora_name: loras/{listed} already exists; choose another name or enable overwrite")
        if not instance_prompt.strip():
            raise ValueError("instance_prompt: expected 'a [identifier] [class noun]', got an empty string")
        if class_images is not None and prior_loss_weight > 0 and not class_prompt.strip():
            raise ValueError("class_prompt: expected 'a [class noun]' for the class images, got an empty string")
        settings = DreamBoothSettings(
            rank=rank,
            alpha=alpha,
            learning_rate=learning_rate,
            steps=steps,
            batch_size=batch_size,
            grad_accumulation=grad_accumulation,
            prior_loss_weight=prior_loss_weight,
            train_text_encoder=train_text_encoder,
            seed=training_seed,
            dtype=training_dtype,
            checkpoint_every=checkpoint_every,
            gradient_checkpointing=gradient_checkpointing,
        )
        settings.validate()
        resume = None if resume_from == NO_RESUME else model_file("loras", resume_from, "resume_from")

        def save_partial(snapshot):
            result, optimizer_state = snapshot
            partial = checkpoint_path(path, result.step)
            save_checkpoint(partial, result, optimizer_state)
            return f"loras/{partial.relative_to(folder_paths.get_folder_paths('loras')[0]).as_posix()}"

        progress = TrainingProgress("DreamBooth", steps, save_partial=save_partial, model=model)
        progress.status(f"encoding {instance_images.shape[0]} instance images")
        instance_latents = encode_images(vae, instance_images, resolution)
        class_latents = (
            encode_images(vae, class_images, resolution) if class_images is not None and prior_loss_weight > 0 else None
        )
        def checkpoint(result, optimizer_state):
            save_checkpoint(checkpoint_path(path, result.step), result, optimizer_state)

        result = train_dreambooth(
            model,
            instance_latents,
            PromptSet(instance_prompt, class_prompt),
            settings,
            clip=clip,
            class_latents=class_latents,
            resume_from=resume,
            checkpoint=checkpoint,
            extra_metadata={"resolution": resolution},
            progress=progress,
        )
        save_checkpoint(path, result, result.optimizer_state)
        csv = "step,loss,instance,prior\n" + "\n".join(
            f"{r['step']},{r['loss']:.6f},{r['instance']:.6f},{r['prior']:.6f}" for r in result.losses
        )
        trained_model, trained_clip = comfy.sd.load_lora_for_models(model, clip, result.state_dict, 1.0, 1.0)
        return io.NodeOutput(
            trained_model, trained_clip, listed, csv, ui={"text": [f"wrote loras/{listed} at step {result.step}"]}
        )


NODES = [DreamBoothIdentifier, DreamBoothClassImages, DreamBoothTrain]
