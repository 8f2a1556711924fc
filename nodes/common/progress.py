"""What a training node shows while it runs, and what a cancel keeps: one mechanism for every in-graph trainer.

    progress = TrainingProgress("DreamBooth", steps, save_partial=save)   # save(snapshot) -> where it went
    progress.status("encoding 4 instance images")                        # before step 1
    for ...:                                                              # the trainer's loop
        ...optimizer.step()...
        progress.step(done, loss, x0=denoised, snapshot=lambda: state_at(done))

- `status(text)`: a line of text on the node (the frontend's progress text) and in the log, for the set-up before
  step 1 (loading, encoding), which otherwise looks frozen.
- `step(...)`: the node's progress bar, a text line "step 12/100, loss 0.1234" on the node, and every `preview_every`
  steps (and at the last step) a preview image through ComfyUI's own channel (`ProgressBar.update_absolute` with a
  preview): `x0` is the trainer's current x0 prediction as a model latent, decoded like the sampler's live preview
  (`latent_preview`; Latent2RGB when previews are switched off, so training always shows one), or a ready IMAGE.
- Cancel: the interrupt is checked after every step, i.e. when the weights are those of a complete step. On the user's
  cancel, `save_partial(snapshot())` writes that step (atomically; the caller picks a name its loader lists) and the
  node's text, the log and the raised `TrainingInterrupted` say where it is. ComfyUI's executor treats
  `TrainingInterrupted` as the interrupt it is (a subclass of its InterruptProcessingException).

Trainers take the object as an optional `progress` argument, so command-line runs and tests train without it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

import comfy.model_management
import comfy.utils

LOG = logging.getLogger("comfyui_exemplar.training")
PREVIEWS_PER_RUN = 20


def default_preview_every(steps: int) -> int:
    """About PREVIEWS_PER_RUN previews per run (every step for short runs)."""
    return max(1, steps // PREVIEWS_PER_RUN)


class TrainingInterrupted(comfy.model_management.InterruptProcessingException):
    """The user cancelled a training node; `saved` is the file holding the last complete step (or None)."""

    def __init__(self, message: str, saved: str | None):
        super().__init__(message)
        self.saved = saved


def _node_id() -> str | None:
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    return None if context is None else context.node_id


def _send_text(text: str, node_id: str | None) -> None:
    """The frontend's per-node progress text, when a server runs (the in-process executor of the tests has none)."""
    if node_id is None:
        return
    try:
        from server import PromptServer
    except ImportError:
        return
    instance = getattr(PromptServer, "instance", None)
    if instance is not None and hasattr(instance, "send_progress_text"):
        instance.send_progress_text(text, node_id)


def latent_previewer(model):
    """ComfyUI's live-preview decoder for `model`'s latent format; Latent2RGB when previews are switched off."""
    import latent_preview

    latent_format = model.model.latent_format
    previewer = latent_preview.get_previewer(model.load_device, latent_format)
    if previewer is None and latent_format.latent_rgb_factors is not None:
        previewer = latent_preview.Latent2RGBPreviewer(
            latent_format.latent_rgb_factors, latent_format.latent_rgb_factors_bias
        )
    return previewer


def image_preview(image: torch.Tensor, size: int = 512):
    """An IMAGE [B, H, W, 3] (first one shown) as the preview tuple ComfyUI's progress channel takes."""
    from PIL import Image

    pixels = (image[0, ..., :3].detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return ("JPEG", Image.fromarray(pixels), size)


class TrainingProgress:
    """Progress bar, status and loss text, previews and cancel-with-save for one training node's run.

    title: the method, for people ("DreamBooth"); steps: the run's last step; save_partial(snapshot) -> str
    writes the last complete step and returns where (as the user finds it, e.g. "loras/x_step000012.safetensors");
    model: the MODEL whose latent format decodes `x0` previews; preview_every: 0 = default_preview_every(steps).
    """

    def __init__(
        self,
        title: str,
        steps: int,
        save_partial: Callable[[Any], str] | None = None,
        model=None,
        preview_every: int = 0,
    ):
        self.title, self.steps, self.save_partial = title, steps, save_partial
        self.preview_every = preview_every or default_preview_every(steps)
        self.node_id = _node_id()
        self.bar = comfy.utils.ProgressBar(steps, node_id=self.node_id)
        self._model = model
        self._previewer = None
        self.texts: list[str] = []  # every line shown on the node, in order
        self.previews = 0

    def _show(self, text: str, level: int = logging.INFO) -> None:
        self.texts.append(text)
        LOG.log(level, "%s", text)
        _send_text(text, self.node_id)

    def status(self, text: str) -> None:
        """A set-up line: "<title>: <text>" on the node and in the log."""
        self._show(f"{self.title}: {text}")

    def wants_preview(self, step: int) -> bool:
        return step == self.steps or step % self.preview_every == 0

    def _decode(self, x0):
        if self._previewer is None:
            self._previewer = latent_previewer(self._model) or False
        if not self._previewer:
            return None
        return self._previewer.decode_latent_to_preview_image("JPEG", x0[:1].detach().float())

    def step(self, step: int, loss: float, x0=None, image=None, snapshot: Callable[[], Any] | None = None) -> None:
        """After optimizer step `step` (1-based): bar, loss text, a preview when due; then the cancel check.

        x0: the x0 prediction as a model latent [B, C, h, w] (or a callable giving it), decoded with `model`'s latent
        format; image: a ready IMAGE [B, H, W, 3] instead (or a callable); either is only evaluated when a preview is
        due. snapshot(): the state `save_partial` writes, only called on cancel.
        """
        try:
            preview = None
            if self.wants_preview(step):
                if image is not None:
                    preview = image_preview(image() if callable(image) else image)
                elif x0 is not None and self._model is not None:
                    preview = self._decode(x0() if callable(x0) else x0)
                self.previews += preview is not None
            self._show(f"{self.title}: step {step}/{self.steps}, loss {loss:.4f}", logging.DEBUG)
            self.bar.update_absolute(step, self.steps, preview)
            comfy.model_management.throw_exception_if_processing_interrupted()
        except comfy.model_management.InterruptProcessingException:
            self.cancelled(step, snapshot)

    def cancelled(self, step: int, snapshot: Callable[[], Any] | None = None):
        """Save the last complete step (when there is one and a saver) and raise TrainingInterrupted naming it."""
        saved = None
        if snapshot is not None and self.save_partial is not None and step > 0:
            saved = self.save_partial(snapshot())
        if saved:
            text = (
                f"{self.title}: cancelled after step {step}/{self.steps}; the last complete step was saved to "
                f"{saved} (load it, or pick it as resume_from to continue)"
            )
        else:
            text = f"{self.title}: cancelled after step {step}/{self.steps}; nothing was saved"
        self._show(text, logging.WARNING)
        raise TrainingInterrupted(text, saved)
