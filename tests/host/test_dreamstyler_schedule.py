"""The stage used at every sampling evaluation equals floor(t/1000·T) for the timestep t the UNet receives.

Real ComfyUI sampling (stock samplers and schedulers, CFG, img2img, custom sigmas) on the tiny
SD1.5 model; the UNet itself is replaced by a DIFFUSION_MODEL wrapper that records the timestep and
the context rows it is called with and returns zeros, so hundreds of schedules run in seconds.
"""

import pytest
import torch

from exemplar_dev.host import pack_submodule

SAMPLERS = [
    "euler",
    "euler_ancestral",
    "heun",
    "dpm_2",
    "lms",
    "dpmpp_2s_ancestral",
    "dpmpp_sde",
    "dpmpp_2m",
    "dpmpp_3m_sde",
    "ddpm",
    "lcm",
    "deis",
    "uni_pc",
    "ddim",
]
STAGES = 6


@pytest.fixture(scope="module")
def setup(node, tiny_sd15):
    model, clip, _ = tiny_sd15
    se = pack_submodule("models.dreamstyler.staged_embedding")
    emb = se.StagedEmbedding("<sks1>", torch.randn(STAGES, 1, 768, generator=torch.Generator().manual_seed(0)) * 0.05)
    encode = node("ExemplarDreamStylerTextEncode")
    positive = encode.execute(clip=clip, staged_embedding=emb, text="a dog in the style of <sks1>").result[0]
    negative = node("CLIPTextEncode")().encode(clip, "blurry")[0]
    return model, clip, emb, positive, negative, se


class Recorder:
    """Replaces the UNet: records (timestep, stage of each cond row) per call and returns zeros."""

    def __init__(self, stage_contexts: torch.Tensor, negative_context: torch.Tensor):
        self.references = torch.cat([stage_contexts, negative_context[None]]).float().flatten(1)
        self.calls = []

    def __call__(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        chunks = transformer_options["cond_or_uncond"]
        rows = x.shape[0] // len(chunks)
        flat = context.float().flatten(1)
        distances = torch.cdist(flat, self.references)
        match = distances.argmin(dim=1)
        assert (distances.min(dim=1).values <= 1e-2 * self.references.norm(dim=1).max()).all()
        for i, which in enumerate(chunks):
            if which == 0:
                self.calls.append((float(timesteps[i * rows]), [int(m) for m in match[i * rows : (i + 1) * rows]]))
        return torch.zeros_like(x)


def recording_model(comfy, model, positive, negative):
    import comfy.patcher_extension as pe

    recorder = Recorder(torch.cat([c for c, _ in positive]), negative[0][0][0])
    patched = model.clone()
    patched.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, "exemplar_test_recorder", recorder)
    return patched, recorder


def assert_stages_follow_the_rule(recorder, se, stages=STAGES):
    assert recorder.calls, "the sampler never called the model"
    for t, matched in recorder.calls:
        expected = se.stage_index(round(t), stages)
        assert matched == [expected], f"t={t}: cond rows used stages {matched}, the rule says {expected}"


def run(comfy, model, positive, negative, sampler, scheduler, steps, denoise=1.0, cfg=4.0):
    import comfy.sample

    latent = torch.zeros(1, 4, 8, 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    comfy.sample.sample(
        model,
        noise,
        steps,
        cfg,
        sampler,
        scheduler,
        positive,
        negative,
        latent,
        denoise=denoise,
        disable_pbar=True,
        seed=0,
    )


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_scheduler_and_step_count(comfy, setup, sampler):
    import comfy.samplers

    model, _, _, positive, negative, se = setup
    patched, recorder = recording_model(comfy, model, positive, negative)
    seen = set()
    for scheduler in comfy.samplers.SCHEDULER_NAMES:
        for steps in (1, 2, 3, 7, 25):
            recorder.calls.clear()
            sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps)
            if not torch.isfinite(sigmas).all():
                continue  # ComfyUI's own schedule is broken here (kl_optimal with 1 step gives NaN): nothing to gate
            run(comfy, patched, positive, negative, sampler, scheduler, steps)
            assert_stages_follow_the_rule(recorder, se)
            seen.update(m[0] for _, m in recorder.calls)
    assert seen == set(range(STAGES))


def test_img2img_denoise_and_a_boundary_that_a_schedule_hits_exactly(comfy, setup):
    model, _, _, positive, negative, se = setup
    patched, recorder = recording_model(comfy, model, positive, negative)
    # the normal scheduler with 3 steps evaluates t = 500 exactly: the boundary between stages 2 and 3 of 6
    run(comfy, patched, positive, negative, "euler", "normal", 3)
    assert_stages_follow_the_rule(recorder, se)
    assert [t for t, _ in recorder.calls] == [999.0, 500.0, 0.0]
    for denoise in (0.3, 0.55, 0.8):
        recorder.calls.clear()
        run(comfy, patched, positive, negative, "dpmpp_2m", "karras", 9, denoise=denoise)
        assert_stages_follow_the_rule(recorder, se)


def test_custom_sigmas_on_and_next_to_every_boundary(comfy, setup):
    import comfy.sample
    import comfy.samplers

    model, _, _, positive, negative, se = setup
    staged_encoding = pack_submodule("nodes.dreamstyler.staged_encoding")
    patched, recorder = recording_model(comfy, model, positive, negative)
    bounds = staged_encoding.stage_bounds(model.get_model_object("model_sampling"), STAGES)
    probes = []
    for low, _ in bounds[1:]:
        bits = torch.tensor([low], dtype=torch.float32).view(torch.int32)
        probes += (bits + torch.arange(-3, 4, dtype=torch.int32)).view(torch.float32).tolist()
    sigma_table = model.get_model_object("model_sampling").sigmas
    probes += sigma_table.tolist()[::37] + [float(sigma_table[-1]) * 1.5]
    sigmas = torch.tensor(sorted(set(probes), reverse=True) + [0.0], dtype=torch.float32)
    latent = torch.zeros(1, 4, 8, 8)
    sampler = comfy.samplers.sampler_object("euler")
    comfy.sample.sample_custom(
        patched, torch.zeros_like(latent), 3.0, sampler, sigmas, positive, negative, latent, disable_pbar=True, seed=0
    )
    assert len(recorder.calls) == len(sigmas) - 1
    assert_stages_follow_the_rule(recorder, se)
    assert {m[0] for _, m in recorder.calls} == set(range(STAGES))


@pytest.mark.parametrize("sampling, zsnr", [("eps", True), ("lcm", False), ("v_prediction", False)])
def test_a_model_with_its_own_schedule(comfy, node, setup, sampling, zsnr):
    """Zero-terminal-SNR or an LCM-distilled table change the sigmas: connecting the model keeps the rule exact."""
    model, clip, emb, _, negative, se = setup
    patch = node("ModelSamplingDiscrete")()
    own_model = patch.patch(model, sampling, zsnr)[0]
    encode = node("ExemplarDreamStylerTextEncode")
    positive = encode.execute(
        clip=clip, staged_embedding=emb, text="a dog in the style of <sks1>", model=own_model
    ).result[0]
    patched, recorder = recording_model(comfy, own_model, positive, negative)
    for sampler, scheduler in (
        ("euler", "normal"),
        ("euler", "karras"),
        ("lcm", "simple"),
        ("dpmpp_2m", "sgm_uniform"),
    ):
        for steps in (4, 25):
            run(comfy, patched, positive, negative, sampler, scheduler, steps)
    assert_stages_follow_the_rule(recorder, se)


def test_the_controlnet_sees_each_stages_prompt(comfy, node, setup):
    """Through Apply ControlNet (Advanced) the entries keep their gating, and the ControlNet's own
    cross-attention context at every evaluation is the stage the rule picks."""
    from comfy.controlnet import load_controlnet

    from exemplar_dev.tiny_dreamstyler import TINY_CONTROLNET_NAME

    model, _, _, positive, negative, se = setup
    staged_encoding = pack_submodule("nodes.dreamstyler.staged_encoding")
    control_net = load_controlnet(comfy.folder_paths.get_full_path_or_raise("controlnet", TINY_CONTROLNET_NAME))
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    apply = node("ControlNetApplyAdvanced")()
    controlled, controlled_negative = apply.apply_controlnet(positive, negative, control_net, hint, 0.8, 0.0, 1.0)
    assert len(controlled) == STAGES
    control = controlled[0][1]["control"]
    for (cond, options), (original_cond, original) in zip(controlled, positive):
        assert cond is original_cond and options["control"] is control
        assert all(
            options.get(k) == original.get(k) for k in ("timestep_start", "timestep_end", staged_encoding.STAGE_KEY)
        )

    sampling = model.get_model_object("model_sampling")
    references = torch.cat([c for c, _ in positive]).float().flatten(1)
    seen = []
    original_get_control = control.get_control

    def recording_get_control(x_noisy, t, cond, batched_number, transformer_options):
        rows = x_noisy.shape[0] // len(transformer_options["cond_or_uncond"])
        context = cond["c_crossattn"].float().flatten(1)
        for i, which in enumerate(transformer_options["cond_or_uncond"]):
            if which == 0:
                stage = int(torch.cdist(context[i * rows : i * rows + 1], references).argmin())
                seen.append((int(sampling.timestep(t[i * rows : i * rows + 1]).item()), stage))
        return original_get_control(x_noisy, t, cond, batched_number, transformer_options)

    control.get_control = recording_get_control
    patched, recorder = recording_model(comfy, model, controlled, controlled_negative)
    run(comfy, patched, controlled, controlled_negative, "euler", "normal", 12)
    assert len(seen) == 12
    assert all(stage == se.stage_index(t, STAGES) for t, stage in seen), seen
    assert {stage for _, stage in seen} == set(range(STAGES))
    assert_stages_follow_the_rule(recorder, se)
