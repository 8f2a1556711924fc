"""Rare-token identifiers for DreamBooth: vocabulary entries with a weak prior that encode to one token.

DreamBooth binds the subject to an identifier that the text encoder knows little about (paper
§3.1: a rare token from the tokenizer's vocabulary, decoded back to text, 1-3 tokens long); the
widely used default is "sks". The criterion applied here to a CLIP BPE vocabulary
({token text: id}, word-final tokens end in "</w>"):

1. word-final: the token ends in "</w>", so the text typed as its own word maps to it;
2. short and plain: the text is `min_length`..`max_length` (3-4) lowercase ASCII letters;
3. rare: its id is at least `min_rank`. CLIP's ids follow the BPE merge order (0-511 are
   bytes, then one id per merge, in the order the merges were learnt), so a late id means the
   string was rare in the tokenizer's training text; "sks" is 48136 of 49408;
4. not a pronounceable word: at most `max_vowels` of a, e, i, o, u, y (this drops late-merged
   English words such as "seal" or "muted");
5. single token: when a `tokenize` function is given, "a <text>" must tokenise to exactly one
   token for <text> (a round trip through the real tokenizer, not just the table).

Candidates come rarest first (highest id first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

WORD_END = "</w>"
VOWELS = frozenset("aeiouy")
_PLAIN = r"^[a-z]+$"


@dataclass(frozen=True)
class Tokenisation:
    """How a text tokenises: token ids and their vocabulary strings (without start/end tokens)."""

    text: str
    ids: tuple[int, ...]
    pieces: tuple[str, ...]

    @property
    def single_token(self) -> bool:
        return len(self.ids) == 1

    def describe(self) -> str:
        shown = " + ".join(f"{piece!r} ({token})" for piece, token in zip(self.pieces, self.ids))
        verdict = (
            "one token: good identifier"
            if self.single_token
            else f"{len(self.ids)} tokens: prefer a single-token identifier"
        )
        return f"{self.text!r} -> {shown or 'nothing'} [{verdict}]"


def tokenisation(text: str, tokenize: Callable[[str], Sequence[int]], inverse_vocab: Mapping[int, str]) -> Tokenisation:
    """Tokenise `text` (ids without the start/end tokens, which `tokenize` must already strip)."""
    ids = tuple(int(i) for i in tokenize(text))
    return Tokenisation(text, ids, tuple(inverse_vocab.get(i, "?") for i in ids))


def is_candidate(
    piece: str, token_id: int, min_rank: int, min_length: int = 3, max_length: int = 4, max_vowels: int = 1
) -> bool:
    """Criteria 1-4 of the module docstring for one vocabulary entry."""
    if not piece.endswith(WORD_END) or token_id < min_rank:
        return False
    text = piece[: -len(WORD_END)]
    if not (min_length <= len(text) <= max_length) or not re.match(_PLAIN, text):
        return False
    return sum(ch in VOWELS for ch in text) <= max_vowels


def rare_token_candidates(
    vocab: Mapping[str, int],
    count: int = 10,
    min_rank: int = 40000,
    tokenize: Callable[[str], Sequence[int]] | None = None,
    min_length: int = 3,
    max_length: int = 4,
    max_vowels: int = 1,
) -> list[str]:
    """Up to `count` identifier candidates from `vocab`, rarest first (criteria in the module docstring).

    `tokenize(text)` returns the ids of `text` without start/end tokens; when given, a candidate
    is kept only if "a <text>" tokenises to the id of "a" followed by exactly the candidate's id.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if min_length < 1 or max_length < min_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}..{max_length}")
    entries = sorted(
        ((i, p) for p, i in vocab.items() if is_candidate(p, i, min_rank, min_length, max_length, max_vowels)),
        reverse=True,
    )
    prefix = list(tokenize("a")) if tokenize is not None else None
    found: list[str] = []
    for token_id, piece in entries:
        text = piece[: -len(WORD_END)]
        if tokenize is not None and list(tokenize(f"a {text}")) != prefix + [token_id]:
            continue
        found.append(text)
        if len(found) == count:
            break
    return found
