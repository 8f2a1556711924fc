"""DreamStyler's context-aware prompts: one template gives the full, context-only and style-only
prompts that style-and-context guidance compares, plus the official code's negative prompt."""

from __future__ import annotations

import re

DEFAULT_TEMPLATE = "A painting of {caption} in the style of {token}"
DEFAULT_CONTEXT_TEMPLATE = "A painting of {caption}"
DEFAULT_STYLE_TEMPLATE = "A painting in the style of {token}"
OFFICIAL_NEGATIVE = "low resolution, poorly drawn, worst quality, low quality, normal quality, blurry image, artifact"


def placeholder_pattern(token: str) -> str:
    """A regular expression of the token as a whole word (not inside a longer word when its ends are word
    characters)."""
    before = r"(?<![\w])" if re.match(r"\w", token[0]) else ""
    after = r"(?![\w])" if re.match(r"\w", token[-1]) else ""
    return before + re.escape(token) + after


def contains_placeholder(text: str, token: str) -> bool:
    return re.search(placeholder_pattern(token), text) is not None


def fill_template(template: str, caption: str, token: str, name: str) -> str:
    """Replace {caption} and {token}; other braces are left as written."""
    if "{token}" not in template and name != "context_template":
        raise ValueError(f"{name} must contain {{token}} (where the style token goes); got {template!r}")
    return template.replace("{caption}", caption.strip()).replace("{token}", token)


def context_aware_prompts(template: str, context_template: str, style_template: str, caption: str, token: str):
    """(full, context-only, style-only) prompts; the context-only one must not name the style token."""
    full = fill_template(template, caption, token, "template")
    context = fill_template(context_template, caption, token, "context_template")
    style = fill_template(style_template, caption, token, "style_template")
    if token and contains_placeholder(context, token):
        raise ValueError(
            f"context_template must not contain the style token {token!r}: it is the prompt without the style"
        )
    return full, context, style
