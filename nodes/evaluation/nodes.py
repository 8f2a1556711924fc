"""Evaluation nodes: identity and text alignment through loaded encoders, background preservation, style score,
and a figure of a sweep. Each metric node shows its numbers on the node and outputs them as FLOATs and as
EXEMPLAR_METRICS (one value per image) for the plot node and the sweep CLI (scripts/sweep.py)."""

from __future__ import annotations

import json
import math

import torch

import comfy.model_management
import folder_paths
from comfy_api.latest import io

from ...models.common.masks import binary_mask
from ...models.evaluation.embeddings import PAIRINGS, SCORES, as_score, crop_to_mask_boxes, similarities
from ...models.evaluation.pixels import background_metrics
from ...models.evaluation.plot import format_value, sweep_figure
from ...models.evaluation.style import style_scores
from ..common.model_folders import VGG_FOLDER
from ..common.types import ExemplarMetricsType
from ..common.finite import require_finite
from .encoders import has_projection, image_embeds, load_vgg, text_embeds

CATEGORY = "exemplar/evaluation"
MAX_PLOTTED = 4


def _finite_or_none(value: float):
    return value if math.isfinite(value) else None


def metrics_output(metrics: dict[str, torch.Tensor], *floats: float) -> io.NodeOutput:
    """FLOAT outputs, the EXEMPLAR_METRICS dict and the node's text: a readable summary and a JSON line."""
    values = {name: [float(v) for v in tensor.flatten()] for name, tensor in metrics.items()}
    lines = [f"{name}: mean {format_value(_mean(v))}  ({', '.join(format_value(x) for x in v)})"
             for name, v in values.items()]
    record = {name: {"mean": _finite_or_none(_mean(v)), "values": [_finite_or_none(x) for x in v]}
              for name, v in values.items()}
    summary = "\n".join(lines)
    return io.NodeOutput(*floats, values, summary, ui={"text": [summary], "exemplar_metrics": [json.dumps(record)]})


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def metric_schema(node_id: str, display_name: str, description: str, inputs: list, outputs: list) -> io.Schema:
    """A metric node: an output node (its numbers show on it) in the evaluation category."""
    return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY, is_output_node=True,
                     description=description, inputs=inputs, outputs=outputs)


def _metrics_outputs():
    return [
        ExemplarMetricsType.Output(display_name="metrics", tooltip="Every value per image, for Plot Metrics."),
        io.String.Output(display_name="summary", tooltip="The numbers as text (also shown on the node)."),
    ]


class ImageSimilarity(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return metric_schema(
            node_id="ExemplarImageSimilarity",
            display_name="Image Similarity (CLIP-I / DINO)",
            description=(
                "Cosine similarity of image embeddings from a loaded CLIP_VISION: CLIP-I with a CLIP vision model, "
                "DINO with DINOv2 (DreamBooth's identity metrics; all_pairs is its protocol). With score "
                "clip_score (max(100 cos, 0)) and a mask it is Paint by Example's region CLIP score (the result "
                "cropped to the mask's box) or Diffuse to Choose's CLIP score."
            ),
            inputs=[
                io.ClipVision.Input("clip_vision",
                                    tooltip="CLIP vision (CLIP-I) or DINOv2 (DINO) from Load CLIP Vision."),
                io.Image.Input("images", tooltip="Generated images (a batch)."),
                io.Image.Input("references", tooltip="Reference / real images: one, one per image, or any number."),
                io.Combo.Input("pairing", options=list(PAIRINGS), default="paired",
                               tooltip="paired: image i vs reference i (or the single one); all_pairs: each image's "
                                       "mean over every reference (DreamBooth)."),
                io.Combo.Input("score", options=list(SCORES), default="cosine",
                               tooltip="cosine, or clip_score = max(100 cos, 0) as in Paint by Example, Diffuse to "
                                       "Choose and DreamStyler."),
                io.Combo.Input("crop", options=["center", "none"], default="center",
                               tooltip="How the encoder sees each image: centre crop or squashed whole."),
                io.Int.Input("resolution", default=0, min=0, max=1024, step=14,
                             tooltip="0: the encoder's own size. DINOv2 also runs at other multiples of 14 px "
                                     "(224 = the DINO protocol's size, 5x cheaper than ComfyUI's 518)."),
                io.Mask.Input("mask", optional=True,
                              tooltip="If given, each image is cropped to this mask's box first (PbE region score)."),
            ],
            outputs=[io.Float.Output(display_name="mean", tooltip="Mean over the images."), *_metrics_outputs()],
        )

    @classmethod
    def execute(cls, clip_vision, images, references, pairing, score, crop, resolution=0, mask=None) -> io.NodeOutput:
        center = crop == "center"
        inputs = crop_to_mask_boxes(images, mask) if mask is not None else images
        values = as_score(similarities(image_embeds(clip_vision, inputs, center, resolution),
                                       image_embeds(clip_vision, references, center, resolution), pairing), score)
        encoder = "DINO" if not has_projection(clip_vision) else "CLIP-I"
        name = f"{encoder}{' region' if mask is not None else ''}{' score' if score == 'clip_score' else ''}"
        return metrics_output({name: values}, float(values.mean()))


class TextAlignment(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return metric_schema(
            node_id="ExemplarTextAlignment",
            display_name="Text Alignment (CLIP-T)",
            description=(
                "CLIP-T: cosine between each image's CLIP embedding and its prompt's, through a CLIP vision model "
                "with its projection and the text encoder of the same CLIP model (Load CLIP). score clip_score "
                "gives DreamStyler's text score max(100 cos, 0). SD1.x checkpoints drop the text projection: their "
                "CLIP is refused with a message."
            ),
            inputs=[
                io.ClipVision.Input("clip_vision", tooltip="A CLIP vision model with its projection (not DINOv2)."),
                io.Clip.Input("clip", tooltip="The text encoder of the same CLIP model (Load CLIP of its file)."),
                io.Image.Input("images", tooltip="Generated images (a batch)."),
                io.String.Input("text", multiline=True, default="a photo of a dog",
                                tooltip="The prompt the images were made from."),
                io.Boolean.Input("one_prompt_per_line", default=False,
                                 tooltip="On: line i is image i's prompt (as many lines as images)."),
                io.Combo.Input("score", options=list(SCORES), default="cosine",
                               tooltip="cosine, or clip_score = max(100 cos, 0) (DreamStyler's text score)."),
                io.Combo.Input("crop", options=["center", "none"], default="center",
                               tooltip="How the encoder sees each image: centre crop or squashed whole."),
            ],
            outputs=[io.Float.Output(display_name="mean", tooltip="Mean over the images."), *_metrics_outputs()],
        )

    @classmethod
    def execute(cls, clip_vision, clip, images, text, one_prompt_per_line, score, crop) -> io.NodeOutput:
        if not has_projection(clip_vision):
            raise ValueError("clip_vision: CLIP-T needs a CLIP vision model with its projection into the text space; "
                             f"this one ({type(clip_vision.model).__name__}) has none (DINOv2 has no text side)")
        if one_prompt_per_line:
            prompts = [line for line in text.splitlines() if line.strip()]
            if len(prompts) != images.shape[0]:
                raise ValueError(f"text: {len(prompts)} prompt lines for {images.shape[0]} images (expected one each)")
        else:
            prompts = [text]
        image_side = image_embeds(clip_vision, images, crop == "center")
        text_side = text_embeds(clip, prompts)
        if text_side.shape[-1] != image_side.shape[-1]:
            raise ValueError(
                f"clip: its text embeddings are {text_side.shape[-1]}-wide but the CLIP vision embeddings are "
                f"{image_side.shape[-1]}-wide; load the text encoder of the same CLIP model"
            )
        values = as_score(similarities(image_side, text_side, "paired"), score)
        name = "CLIP-T score" if score == "clip_score" else "CLIP-T"
        return metrics_output({name: values}, float(values.mean()))


class BackgroundPreservation(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        float_outputs = [
            io.Float.Output(display_name=f"{metric}_{where}", tooltip=f"{label} {where} the mask, mean over images.")
            for where in ("outside", "inside")
            for metric, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("mse", "MSE"), ("delta_e", "CIE76 Delta E"))
        ]
        return metric_schema(
            node_id="ExemplarBackgroundPreservation",
            display_name="Background Preservation (PSNR / SSIM / Delta E)",
            description=(
                "How much an inpainting changed the picture outside and inside the mask, source vs result: PSNR, "
                "SSIM (Gaussian 11x11 window), MSE and colour shift (CIE76 Delta E in CIELAB). Outside the mask "
                "an ideal inpainting scores PSNR inf, SSIM 1, MSE 0, Delta E 0."
            ),
            inputs=[
                io.Image.Input("source", tooltip="The image before inpainting (one, or one per result)."),
                io.Image.Input("result", tooltip="The inpainted image(s), same size as the source."),
                io.Mask.Input("mask", tooltip="White = the regenerated region (resized to the images, > 0.5)."),
            ],
            outputs=[*float_outputs, *_metrics_outputs()],
        )

    @classmethod
    def execute(cls, source, result, mask) -> io.NodeOutput:
        if mask.shape[0] not in (1, result.shape[0]):
            raise ValueError(f"mask has batch {mask.shape[0]}; expected 1 or the result batch {result.shape[0]}")
        region = binary_mask(mask, tuple(result.shape[1:3]))
        metrics = background_metrics(source, result, region)
        means = [float(v.mean()) for v in metrics.values()]
        return metrics_output(metrics, *means)


class StyleScore(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return metric_schema(
            node_id="ExemplarStyleScore",
            display_name="Style Score (VGG Gram)",
            description=(
                "DreamStyler's style score: 100 x the cosine between VGG16 Gram matrices (relu1_1 ... relu5_1) of "
                "the image and the style image, averaged over five patches (corners and centre). VGG16 weights come "
                "from a file in models/vgg/ (torchvision's vgg16-397923af.pth loads as it is); nothing is downloaded."
            ),
            inputs=[
                io.Combo.Input("vgg_name", options=folder_paths.get_filename_list(VGG_FOLDER),
                               tooltip="A VGG16 file in models/vgg/ (torchvision's ImageNet VGG16)."),
                io.Image.Input("images", tooltip="Generated images (a batch)."),
                io.Image.Input("style_image", tooltip="The style reference (one, or one per image)."),
                io.Float.Input("patch_fraction", default=0.5, min=0.1, max=1.0, step=0.05,
                               tooltip="Patch side as a fraction of the short side; 1 = the whole (square) image."),
                io.Int.Input("patch_size", default=224, min=32, max=1024, step=8,
                             tooltip="Each patch is resized to this many pixels before VGG (224 = ImageNet's size)."),
            ],
            outputs=[io.Float.Output(display_name="mean", tooltip="Mean style score over the images."),
                     *_metrics_outputs()],
        )

    @classmethod
    def execute(cls, vgg_name, images, style_image, patch_fraction, patch_size) -> io.NodeOutput:
        require_finite(patch_fraction=patch_fraction)
        vgg = load_vgg(vgg_name).loaded()
        values = style_scores(vgg, images, style_image, patch_fraction, patch_size)
        return metrics_output({"style score": values.to(comfy.model_management.intermediate_device())},
                              float(values.mean()))


class PlotMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        metric_inputs = [
            ExemplarMetricsType.Input(f"metrics_{i}", optional=i > 1,
                                      tooltip="Metrics of a metric node (each value is one point of the sweep).")
            for i in range(1, MAX_PLOTTED + 1)
        ]
        return io.Schema(
            node_id="ExemplarPlotMetrics",
            display_name="Plot Metrics",
            category=CATEGORY,
            description=(
                "A comparison figure as an IMAGE: the images side by side with their metric values, and a line "
                "chart of each metric against the swept setting (one image of the batch per setting value)."
            ),
            inputs=[
                *metric_inputs,
                io.String.Input("x_label", default="image", tooltip="Name of the swept setting (e.g. cfg)."),
                io.String.Input("x_values", default="",
                                tooltip="Comma-separated setting value of each image (empty: 0, 1, 2, ...)."),
                io.Image.Input("images", optional=True, tooltip="The images the metrics were computed on."),
            ],
            outputs=[io.Image.Output(display_name="figure", tooltip="The figure (save or preview it).")],
        )

    @classmethod
    def execute(cls, metrics_1, x_label, x_values, metrics_2=None, metrics_3=None, metrics_4=None,
                images=None) -> io.NodeOutput:
        merged: dict[str, list[float]] = {}
        for metrics in (metrics_1, metrics_2, metrics_3, metrics_4):
            for name, values in (metrics or {}).items():
                merged[name if name not in merged else f"{name} ({len(merged)})"] = list(values)
        xs = [x.strip() for x in x_values.split(",") if x.strip()] if x_values.strip() else None
        return io.NodeOutput(sweep_figure(merged, xs, x_label or "image", images))


NODES = [ImageSimilarity, TextAlignment, BackgroundPreservation, StyleScore, PlotMetrics]
