"""The metadata header of the pack's own safetensors artefacts: what a file is, in which layout version.

Every artefact the pack writes carries (all values are strings, as safetensors requires):

    exemplar.kind     what the file is, e.g. "dtc_adapter", "token_scorer"
    exemplar.version  the version of that kind's key layout, an integer ("1")
    exemplar.<name>   further fields of that kind (dimensions, token, base architecture, ...)

Files written before this header was unified spell the version `exemplar.format_version`
(DreamStyler embeddings) or `exemplar.format` (token scorers and projections); the reader takes
those spellings too, so such files keep loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

PREFIX = "exemplar."
KIND_KEY = PREFIX + "kind"
VERSION_KEY = PREFIX + "version"
OLDER_VERSION_KEYS = (PREFIX + "format_version", PREFIX + "format")


WEIGHTS_GUIDE = "docs/weights.md"

# kind -> (what people call it, the section of docs/weights.md that says where such a file comes from)
KINDS = {
    "dtc_adapter": ("Diffuse to Choose adapter", "Diffuse to Choose"),
    "token_scorer": ("DreamInpainter token scorer", "DreamInpainter"),
    "token_projection": ("DreamInpainter token projection", "DreamInpainter"),
    "dreamstyler_staged_embedding": ("DreamStyler staged embedding", "DreamStyler"),
    "dreambooth_lora": ("DreamBooth LoRA", "DreamBooth"),
    "paint_by_example_checkpoint": ("Paint-by-Example checkpoint", "Paint by Example"),
}


def kind_label(kind: str) -> str:
    return KINDS[kind][0] if kind in KINDS else f"{kind} file"


def where_to_get(kind: str) -> str:
    """The sentence that points at the weights guide for a `kind` file."""
    section = KINDS[kind][1] if kind in KINDS else None
    place = f'{WEIGHTS_GUIDE}, section "{section}"' if section else WEIGHTS_GUIDE
    return f"Where a {kind_label(kind)} comes from (download or training): {place}."


class ArtefactHeaderError(ValueError):
    """A file's header does not describe the artefact that was expected (the message says both)."""


@dataclass(frozen=True)
class ArtefactHeader:
    kind: str
    version: int
    fields: dict[str, str]  # exemplar.<name> -> fields[name]; kind and version left out
    source: str = "file"

    def value(self, name: str) -> str:
        """The value of exemplar.<name>; its absence is an error naming the file."""
        if name not in self.fields:
            raise ArtefactHeaderError(f"{self.source} has an incomplete {self.kind} header: no {PREFIX}{name}")
        return self.fields[name]


def write_header(kind: str, version: int, fields: Mapping[str, object] | None = None) -> dict[str, str]:
    """The metadata of a `kind` file in layout `version`; each field `name` is stored as exemplar.<name>."""
    if not kind:
        raise ValueError("an artefact header needs a kind")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"an artefact version is an integer >= 1; got {version!r}")
    header = {KIND_KEY: kind, VERSION_KEY: str(version)}
    for name, value in (fields or {}).items():
        key = PREFIX + name
        if key in (KIND_KEY, VERSION_KEY, *OLDER_VERSION_KEYS):
            raise ValueError(f"{key} is part of the header itself, not a field")
        header[key] = str(value)
    return header


def _version_entry(metadata: Mapping[str, str]) -> tuple[str, str] | None:
    for key in (VERSION_KEY, *OLDER_VERSION_KEYS):
        if key in metadata:
            return key, metadata[key]
    return None


def read_header(
    metadata: Mapping[str, str] | None,
    kind: str,
    version: int,
    source: str = "file",
    label: str | None = None,
) -> ArtefactHeader:
    """Check that `metadata` describes a `kind` file of a layout version this pack reads (1..`version`).

    `label` names the kind for people (default: from KINDS, e.g. "Diffuse to Choose adapter"). A missing
    header, another kind, a newer or unreadable version each raise ArtefactHeaderError saying what
    the file is, what was expected and (for the first two) where such a file comes from.
    """
    metadata = dict(metadata or {})
    label = label or kind_label(kind)
    found = metadata.get(KIND_KEY)
    if found is None:
        raise ArtefactHeaderError(
            f"{source} is not a {label}: it carries no comfyui-exemplar header ({KIND_KEY}), so it was not written "
            f"by this pack (a file from another tool?). {where_to_get(kind)}"
        )
    if found != kind:
        raise ArtefactHeaderError(
            f"{source} is not a {label}: it is a {kind_label(found)} ({KIND_KEY} = {found!r}). {where_to_get(kind)}"
        )
    entry = _version_entry(metadata)
    if entry is None:
        raise ArtefactHeaderError(
            f"{source} is a {label} without a format version ({VERSION_KEY}); its layout is unknown"
        )
    key, raw = entry
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ArtefactHeaderError(f"{source} has an unreadable format version {raw!r} in {key}; expected an integer")
    number = int(raw)
    if number > version:
        raise ArtefactHeaderError(
            f"{source} is a {label} of format version {raw!r}, newer than this comfyui-exemplar reads "
            f"(up to {version}): update the pack to load it"
        )
    header_keys = (KIND_KEY, VERSION_KEY, *OLDER_VERSION_KEYS)
    fields = {k[len(PREFIX) :]: v for k, v in metadata.items() if k.startswith(PREFIX) and k not in header_keys}
    return ArtefactHeader(kind, number, fields, source)


def has_header(metadata: Mapping[str, str] | None) -> bool:
    """True when the metadata carries a comfyui-exemplar header at all (files from elsewhere do not)."""
    return KIND_KEY in (metadata or {})
