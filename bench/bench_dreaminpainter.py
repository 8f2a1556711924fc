"""DreamInpainter self-attention reference injection: per-step cost of K = 24 selected tokens vs all
N tokens vs no injection, on the full-size SD1.5-shaped UNet (32x32 latent, CPU, cfg 5), plus the
one-off cost of the UNet-feature reference pass and the attention memory at K vs N.

The reference tokens are the model's own features at its default block (end of the 2nd down stage,
640 channels) for a 64x64 reference latent (a 512 px image): N = 32 x 32 = 1024, as in the paper.
"""

import os
import time

from harness import compare, full_sd15_model, ksampler_run, report, text_conditioning

from exemplar_dev.host import pack_submodule

STEPS = 3
K = 24
REPEATS = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "3"))


def attention_memory(model, latent_side: int, references: int, batch: int = 2, bytes_per=4) -> int:
    """Bytes of the attention logits of every injected self-attention in one UNet call (cond + uncond)."""
    blocks = pack_submodule("nodes.dreaminpainter.reference_attention").transformer_blocks(model)
    total = 0
    for (name, number, _), transformer in blocks:
        if transformer.attn1.to_k.in_features != 640:
            continue
        side = latent_side // 2  # the 640-wide blocks run at half the latent resolution
        queries = side * side
        total += batch * transformer.n_heads * queries * (queries + references) * bytes_per
    return total


def main():
    import torch

    features = pack_submodule("nodes.dreaminpainter.unet_features")
    attention = pack_submodule("nodes.dreaminpainter.reference_attention")
    tokens_module = pack_submodule("models.dreaminpainter.tokens")
    selector = pack_submodule("models.dreaminpainter.token_selector")

    model = full_sd15_model()
    reference = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(7))
    context = torch.zeros(1, 77, 768)
    started = time.perf_counter()
    grid = features.unet_features(model, reference, "auto", 0, context)
    encode_seconds = time.perf_counter() - started
    batch, dim, h, w = grid.shape
    all_tokens = tokens_module.ExemplarTokens(
        grid.flatten(2).transpose(1, 2).contiguous(), tokens_module.spatial_positions(batch, h, w), (h, w)
    )
    top_k = selector.select_top_k(all_tokens, K, "saliency")

    def patched(tokens):
        return attention.patch_reference_attention(model, tokens.tokens, 1.0, 0.0, 1.0, False)

    with_k, with_n = patched(top_k), patched(all_tokens)
    positive, negative = text_conditioning(1), text_conditioning(2)
    latent = torch.zeros(1, 4, 32, 32)
    per_step = compare(
        {
            "core KSampler (no injection)": lambda: ksampler_run(model, positive, negative, latent, STEPS),
            f"injection, K = {K} selected tokens": lambda: ksampler_run(with_k, positive, negative, latent, STEPS),
            f"injection, all N = {all_tokens.count} tokens": lambda: ksampler_run(
                with_n, positive, negative, latent, STEPS
            ),
        },
        steps=STEPS,
        repeats=REPEATS,
    )
    text = report(
        "DreamInpainter self-attention injection (full-size SD1.5 UNet, 32x32 latent, CPU)",
        per_step,
        "core KSampler (no injection)",
    )
    plain = attention_memory(model, 32, 0)
    extra = "\n".join(
        [
            f"  reference pass (UNet features to input.5, once per reference, 64x64 latent): "
            f"{encode_seconds * 1000:.0f} ms; tokens {tuple(all_tokens.tokens.shape)}",
            f"  attn1 logits per UNet call over the 640-wide blocks (fp32, cond+uncond): none {plain / 2**20:.1f} MiB, "
            f"K={K} {attention_memory(model, 32, K) / 2**20:.1f} MiB, "
            f"N={all_tokens.count} {attention_memory(model, 32, all_tokens.count) / 2**20:.1f} MiB (computed)",
        ]
    )
    print(extra, flush=True)
    return text + "\n" + extra


if __name__ == "__main__":
    main()
