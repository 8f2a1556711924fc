"""DreamStyler staged encoding: staged embeddings inside ComfyUI's CLIP tokenizer and sampler.

* `tokenize_with_vectors` tokenizes a prompt with ComfyUI's own tokenizer (weights syntax,
  ``embedding:`` names, 77-token chunks all kept) with a one-token marker word where the placeholder
  stands, then puts a stage's vectors in the marker's places (ComfyUI's token lists hold tensors as
  well as ids), so no tokenizer method is replaced.
* `stage_bounds` gives, for a model's noise schedule, the sigma interval of each stage, so that a
  conditioning entry carrying ``timestep_start`` / ``timestep_end`` is used exactly at the sampling
  evaluations whose model timestep t has ``floor(t / 1000 * T) == k``.
* `encode_staged` builds the CONDITIONING: one entry per stage, gated by those intervals; at every
  model evaluation exactly one entry is active, so a step costs what a plain prompt costs.
"""

from __future__ import annotations

import re

import torch

from ...models.dreamstyler.context_prompts import contains_placeholder, placeholder_pattern
from ...models.dreamstyler.staged_embedding import StagedEmbedding, stage_sigma_bounds

STAGE_KEY = "exemplar_dreamstyler_stage"  # (stage, stages) on each entry, for guiders and tests

# words the CLIP BPE vocabulary holds as one token; the first one the prompt does not already use is the marker
MARKER_WORDS = ("zzzz", "yyyy", "xxxx", "kkkk")


def _sub_tokenizers(tokenizer) -> list:
    found = [
        v for v in vars(tokenizer).values() if hasattr(v, "tokenize_with_weights") and hasattr(v, "embedding_size")
    ]
    if not found:
        raise RuntimeError(
            "this CLIP's tokenizer has no SD-style text tokenizer (embedding_size, tokenize_with_weights) "
            f"({type(tokenizer).__name__}); DreamStyler embeddings need an SD1.x-style CLIP text encoder"
        )
    return found


def check_dim(clip, embedding: StagedEmbedding) -> None:
    """A clear error when the embedding's vector sizes are not what this CLIP's token tables hold (an SDXL embedding
    needs SDXL's two encoders, a one-encoder embedding a CLIP whose every encoder takes its size)."""
    sizes = {getattr(sub, "embedding_key", "clip"): sub.embedding_size for sub in _sub_tokenizers(clip.tokenizer)}
    dims = embedding.dims()
    if embedding.is_sdxl:
        if sizes != dims:
            raise ValueError(
                f"staged_embedding is an SDXL embedding ({embedding.token}, {embedding.stages} stages, "
                f"{', '.join(f'{k} {v}-dim' for k, v in dims.items())}) but this CLIP's text encoders take "
                f"{', '.join(f'{v}-dim ({k})' for k, v in sizes.items())} token embeddings: use the SDXL model's CLIP"
            )
        return
    wrong = {k: v for k, v in sizes.items() if v != embedding.dim}
    if wrong:
        raise ValueError(
            f"staged_embedding has {embedding.dim}-dim vectors ({embedding.token}, {embedding.stages} stages) but this "
            f"CLIP's text encoder takes {', '.join(f'{v}-dim ({k})' for k, v in sizes.items())} token embeddings: "
            f"use the CLIP of the model the embedding was trained for (SD1.x: 768; SDXL: clip_l 768 + clip_g 1280)"
        )


def _word_ids(clip, word: str) -> dict:
    """{tokenizer key: the ids `word` alone tokenizes to}, start/end/padding left out."""
    empty = {key: {t for t, *_ in chunks[0]} for key, chunks in clip.tokenize("").items()}
    return {key: [t for t, *_ in chunks[0] if t not in empty[key]] for key, chunks in clip.tokenize(word).items()}


def _count(tokens: dict, ids: dict) -> dict:
    """{tokenizer key: how often its marker id occurs in `tokens`}."""
    return {
        key: sum(1 for chunk in chunks for t, *_ in chunk if isinstance(t, int) and t == ids[key][0])
        for key, chunks in tokens.items()
    }


def _vectors_by_tokens_key(clip, keys, vectors) -> dict:
    """{clip.tokenize key ("l", "g"): [n, dim]} from one tensor for every encoder or a {embedding_key: tensor}
    dict (a StagedEmbedding's encoder_vectors; key "" = every encoder)."""
    if isinstance(vectors, torch.Tensor):
        return {key: vectors for key in keys}
    if set(vectors) == {""}:
        return {key: vectors[""] for key in keys}
    out = {}
    for key in keys:
        embedding_key = getattr(getattr(clip.tokenizer, f"clip_{key}", None), "embedding_key", f"clip_{key}")
        if embedding_key not in vectors:
            raise ValueError(f"the staged embedding has no {embedding_key} vectors for this CLIP's '{key}' encoder")
        out[key] = vectors[embedding_key]
    return out


def tokenize_with_vectors(clip, text: str, token: str, vectors):
    """ComfyUI tokens of `text` with `vectors` ([n, dim], or per encoder {embedding_key: [n, dim]}) in place of
    every `token` occurrence."""
    pattern = placeholder_pattern(token)
    occurrences = len(re.findall(pattern, text))
    n = (vectors if isinstance(vectors, torch.Tensor) else next(iter(vectors.values()))).shape[0]
    for marker in MARKER_WORDS:
        ids = _word_ids(clip, marker)
        if any(len(v) != 1 for v in ids.values()):
            continue
        tokens = clip.tokenize(re.sub(pattern, " " + " ".join([marker] * n) + " ", text))
        if all(c == n * occurrences for c in _count(tokens, ids).values()):
            break
    else:
        raise ValueError(
            f"cannot place the staged embedding's vectors: the prompt already uses every marker word "
            f"({', '.join(MARKER_WORDS)}) or this CLIP's tokenizer splits them; remove them from the prompt"
        )
    per_key = _vectors_by_tokens_key(clip, tokens.keys(), vectors)
    for key, chunks in tokens.items():
        marker_id, seen = ids[key][0], 0
        for chunk in chunks:
            for i, entry in enumerate(chunk):
                if isinstance(entry[0], int) and entry[0] == marker_id:
                    chunk[i] = (per_key[key][seen % n],) + tuple(entry[1:])
                    seen += 1
    return tokens


# ----------------------------------------------------------------------------- stage boundaries

_DEFAULT_SAMPLING = None


def default_model_sampling():
    """SD1's discrete schedule (what DreamStyler embeddings are trained with)."""
    global _DEFAULT_SAMPLING
    if _DEFAULT_SAMPLING is None:
        import comfy.model_sampling

        _DEFAULT_SAMPLING = comfy.model_sampling.ModelSamplingDiscrete()
    return _DEFAULT_SAMPLING


def stage_bounds(model_sampling, stages: int) -> list[tuple[float | None, float | None]]:
    """Sigma interval [low, high] of each stage under `model_sampling` (a discrete-timestep schedule)."""
    sigmas = getattr(model_sampling, "sigmas", None)
    if sigmas is None or not hasattr(model_sampling, "timestep") or sigmas.ndim != 1 or sigmas.shape[0] < stages:
        raise ValueError(
            f"the model's sampling ({type(model_sampling).__name__}) has no discrete timestep table; "
            "DreamStyler stages are defined on the 1000 DDPM timesteps of SD1.x-style models"
        )

    def timestep_of(sigma: torch.Tensor) -> torch.Tensor:
        return model_sampling.timestep(sigma.to(sigmas.device))

    return stage_sigma_bounds(timestep_of, sigmas, stages)


def gate(entry_options: dict, stage: int, stages: int, bounds) -> dict:
    """Conditioning options restricted to `stage`'s sigma interval (ComfyUI's timestep_start/end keys)."""
    low, high = bounds[stage]
    options = {k: v for k, v in entry_options.items() if k not in ("timestep_start", "timestep_end")}
    if high is not None:
        options["timestep_start"] = high  # skipped when sigma > timestep_start
    if low is not None:
        options["timestep_end"] = low  # skipped when sigma < timestep_end
    options[STAGE_KEY] = (stage, stages)
    return options


def encode_staged(clip, text: str, embedding: StagedEmbedding, model_sampling=None) -> list:
    """CONDITIONING with one entry per stage, entry k encoded with stage k's vectors and gated to its sigmas."""
    check_dim(clip, embedding)
    if not contains_placeholder(text, embedding.token):
        raise ValueError(
            f"the prompt does not contain the staged embedding's token {embedding.token!r}; write it where the style "
            f"word goes, e.g. 'A painting of a dog in the style of {embedding.token}'"
        )
    bounds = stage_bounds(model_sampling if model_sampling is not None else default_model_sampling(), embedding.stages)
    conditioning = []
    for stage in range(embedding.stages):
        tokens = tokenize_with_vectors(clip, text, embedding.token, embedding.encoder_vectors(stage))
        for cond, options in clip.encode_from_tokens_scheduled(tokens):
            if "clip_start_percent" in options or "start_percent" in options:
                raise ValueError(
                    "the CLIP carries scheduled hooks (CLIP hook keyframes); the staged encoder sets its own timestep "
                    "ranges and cannot combine with them: remove the hooks from this CLIP"
                )
            conditioning.append([cond, gate(options, stage, embedding.stages, bounds)])
    return conditioning
