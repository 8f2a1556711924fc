"""The files the shipped workflows load, under the names a user gets by following docs/weights.md.

One table, used three ways: the asset builders write the tiny test models under these names (in the
checkout's own base directory, `.comfy/`), the workflow builder puts each file's (name, url, directory) on its
loader node as ComfyUI's `properties.models` (the frontend's missing-models panel offers the download), and
docs/weights.md cites it. A file with no public download (trained by the user, or converted by the pack) has
url None and a name that says so; it gets no `properties.models` entry (the frontend ignores entries without
a url) and the template's note says how to make it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFile:
    name: str  # the file name in `directory`, as the loader's widget lists it
    directory: str  # the ComfyUI model folder (models/<directory>/)
    url: str | None  # a direct download that saves a file of exactly this content; None = not public
    what: str  # one line for the template's note and the docs

    def link(self) -> dict | None:
        """The `properties.models` entry of a loader node, or None when there is nothing to download."""
        return None if self.url is None else {"name": self.name, "url": self.url, "directory": self.directory}


HF = "https://huggingface.co"

# ComfyUI's own SD1.5 templates load this file (the fp16 copy of the v1.5 EMA weights).
SD15 = ModelFile(
    "v1-5-pruned-emaonly-fp16.safetensors",
    "checkpoints",
    f"{HF}/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors?download=true",
    "Stable Diffusion 1.5 (any SD1.5 checkpoint works)",
)
SD15_INPAINT = ModelFile(
    "sd-v1-5-inpainting.ckpt",
    "checkpoints",
    f"{HF}/stable-diffusion-v1-5/stable-diffusion-inpainting/resolve/main/sd-v1-5-inpainting.ckpt?download=true",
    "Stable Diffusion 1.5 inpainting (9-channel UNet)",
)
SDXL = ModelFile(
    "sd_xl_base_1.0.safetensors",
    "checkpoints",
    f"{HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors?download=true",
    "Stable Diffusion XL 1.0 base (any SDXL checkpoint works)",
)
# diffusers/stable-diffusion-xl-1.0-inpainting-0.1 publishes diffusers folders only; this single file (the same
# weights, openrail++) is a community repackaging that Load Checkpoint reads (docs/weights.md names both).
SDXL_INPAINT = ModelFile(
    "sd_xl_base_1.0_inpainting_0.1.safetensors",
    "checkpoints",
    f"{HF}/benjamin-paine/sd-xl-alternative-bases/resolve/main/sd_xl_base_1.0_inpainting_0.1.safetensors"
    "?download=true",
    "Stable Diffusion XL 1.0 inpainting 0.1 (9-channel UNet)",
)
# Fantasy-Studio/Paint-by-Example publishes model.ckpt; saved as paint_by_example.ckpt, the pack's converter (node
# or scripts/convert_pbe.py) writes paint_by_example.safetensors beside it, which the template loads.
PBE_OFFICIAL = ModelFile(
    "model.ckpt",
    "checkpoints",
    f"{HF}/Fantasy-Studio/Paint-by-Example/resolve/main/model.ckpt?download=true",
    "Paint-by-Example, the official checkpoint (save as paint_by_example.ckpt, then convert)",
)
PBE = ModelFile(
    "paint_by_example.safetensors",
    "checkpoints",
    None,
    "Paint-by-Example, the official model.ckpt converted by the pack's converter",
)
# ComfyUI reads the transformers DINOv2 file as a CLIP vision model; the download is named model.safetensors,
# saved under this name.
DINOV2_LARGE = ModelFile(
    "dinov2_large.safetensors",
    "clip_vision",
    f"{HF}/facebook/dinov2-large/resolve/main/model.safetensors?download=true",
    "DINOv2 ViT-L/14 image encoder (facebook/dinov2-large model.safetensors, renamed)",
)
# ComfyUI's own depth ControlNet template loads this file.
CONTROLNET_DEPTH = ModelFile(
    "control_v11f1p_sd15_depth_fp16.safetensors",
    "controlnet",
    f"{HF}/comfyanonymous/ControlNet-v1-1_fp16_safetensors/resolve/main/control_v11f1p_sd15_depth_fp16.safetensors"
    "?download=true",
    "ControlNet 1.1 depth for SD1.5 (fp16)",
)
# torchvision's ImageNet VGG16 (what torchvision.models.vgg16(weights="IMAGENET1K_V1") downloads).
VGG16 = ModelFile(
    "vgg16-397923af.pth",
    "vgg",
    "https://download.pytorch.org/models/vgg16-397923af.pth",
    "VGG16 ImageNet weights (torchvision), for the style score and the DtC perceptual loss",
)
DTC_ADAPTER = ModelFile(
    "dtc_adapter_trained_by_you.safetensors",
    "exemplar",
    None,
    "a Diffuse-to-Choose adapter: no public weights; train one with the diffuse_to_choose_train workflow",
)
DREAMSTYLER_STYLE = ModelFile(
    "dreamstyler_style_trained_by_you.safetensors",
    "embeddings",
    None,
    "a DreamStyler staged embedding: no public weights; train one (scripts/dreamstyler_train.py)",
)
DREAMSTYLER_SDXL_STYLE = ModelFile(
    "dreamstyler_sdxl_style_trained_by_you.safetensors",
    "embeddings",
    None,
    "an SDXL DreamStyler staged embedding (CLIP-L + bigG per stage): no public weights; train one",
)

# Every file a shipped workflow loads, and so every file the tiny assets stand in for.
MODEL_FILES = (
    SD15, SD15_INPAINT, SDXL, SDXL_INPAINT, PBE, DINOV2_LARGE, CONTROLNET_DEPTH, VGG16, DTC_ADAPTER, DREAMSTYLER_STYLE,
    DREAMSTYLER_SDXL_STYLE,
)
# What a user downloads to make the files above (docs/weights.md lists these too).
DOWNLOADS = (SD15, SD15_INPAINT, SDXL, SDXL_INPAINT, PBE_OFFICIAL, DINOV2_LARGE, CONTROLNET_DEPTH, VGG16)
BY_NAME = {f.name: f for f in MODEL_FILES}

# Sample images the templates load: tiny, named so that a user sees what to replace.
SOURCE_IMAGE = "exemplar_example_source.png"
REFERENCE_IMAGE = "exemplar_example_reference.png"
PERSON_IMAGE = "exemplar_example_person.png"
GARMENT_IMAGE = "exemplar_example_garment.png"
CONTENT_IMAGE = "exemplar_example_content.png"
DEPTH_IMAGE = "exemplar_example_depth.png"
STYLE_IMAGE = "exemplar_example_style.png"
SUBJECT_IMAGES = ("exemplar_example_subject_1.png", "exemplar_example_subject_2.png")
