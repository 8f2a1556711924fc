"""DreamInpainter sample artefacts in models/exemplar: an (untrained) token scorer and token projection.

Both are sized for the tiny SD1.5 model's default UNet-feature tokens (dim 640; context 768).
The scorer has random weights (a stand-in a trained one replaces); the projection is a fresh one
with gate 0, i.e. exactly what training starts from: it changes nothing until trained.
"""

from __future__ import annotations

from pathlib import Path

from ..host import pack_submodule
from ..tiny_models import atomic_save, is_current

TINY_SCORER_NAME = "exemplar_tiny_token_scorer_640.safetensors"
TINY_PROJECTION_NAME = "exemplar_tiny_token_projection_640_768.safetensors"
BUILDER_VERSION = "1"




def prepare(base_dir: Path) -> None:
    folder = Path(base_dir) / "models" / "exemplar"
    scorer = pack_submodule("models.dreaminpainter.token_scorer").init_token_scorer(640, hidden=64, seed=0)
    projection = pack_submodule("models.dreaminpainter.token_projection").init_token_projection(640, 768, seed=0)
    for name, module in ((TINY_SCORER_NAME, scorer), (TINY_PROJECTION_NAME, projection)):
        metadata = dict(module.metadata(), **{"exemplar.builder": BUILDER_VERSION})
        if not is_current(folder / name, metadata):
            atomic_save({k: v.detach().float() for k, v in module.state_dict().items()}, folder / name, metadata)
