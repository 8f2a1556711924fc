"""The glue the pair-dataset trainers' nodes and CLIs share: nodes/common/training_inputs.py, scripts/train_cli.py."""

import math
from dataclasses import dataclass

import pytest

import train_cli
from exemplar_dev.host import pack_submodule


def test_losses_csv_has_a_column_per_term_with_its_decimals():
    inputs = pack_submodule("nodes.common.training_inputs")
    losses = [{"step": 1, "loss": 0.5, "decoupled": 1.0}, {"step": 2, "loss": 0.25, "decoupled": 0.5}]
    assert inputs.losses_csv(losses, {"loss": 6, "decoupled": 3}) == (
        "step,loss,decoupled\n1,0.500000,1.000\n2,0.250000,0.500"
    )
    assert inputs.losses_csv([], {"loss": 6}) == "step,loss\n"
    assert inputs.last_loss(losses) == 0.25
    assert math.isnan(inputs.last_loss([]))


def test_node_settings_map_the_seed_and_dtype_inputs_and_validate():
    inputs = pack_submodule("nodes.common.training_inputs")
    train_loop = pack_submodule("models.common.train_loop")

    @dataclass
    class Settings(train_loop.TrainSettings):
        k: int = 24

        def validate(self):
            train_loop.raise_first(train_loop.common_checks(self))

    values = {"training_seed": 9, "training_dtype": "bf16", "steps": 3, "k": 5, "unrelated": "x"}
    settings = inputs.node_settings(Settings, values)
    got = (settings.seed, settings.dtype, settings.steps, settings.k, settings.learning_rate)
    assert got == (9, "bf16", 3, 5, 1e-5)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        inputs.node_settings(Settings, dict(values, steps=0))


def test_require_pairs_names_the_node_the_dataset_comes_from():
    inputs = pack_submodule("nodes.common.training_inputs")
    with pytest.raises(ValueError) as error:
        inputs.require_pairs([1, 2], "Diffuse to Choose Training Pairs")
    assert str(error.value) == "dataset must come from Diffuse to Choose Training Pairs, got list"
    with pytest.raises(ValueError, match="must come from DtC Training Pairs, got dict"):
        inputs.require_pairs({})


def test_shared_inputs_carry_each_trainer_s_defaults_and_tooltips():
    inputs = pack_submodule("nodes.common.training_inputs")
    run = inputs.run_inputs(1e-4, "AdamW.", "Square.", batch_tooltip="Per rank.")
    assert [i.id for i in run] == ["steps", "learning_rate", "batch_size", "grad_accumulation", "resolution"]
    assert (run[1].default, run[1].tooltip, run[2].tooltip, run[4].tooltip) == (1e-4, "AdamW.", "Per rank.", "Square.")
    assert run[0].tooltip == "Optimizer steps (the total)." and (run[4].min, run[4].step) == (64, 8)
    resume = inputs.resume_inputs(["a.safetensors"], "From a file.")
    assert resume[0].options == ["none", "a.safetensors"] and resume[0].default == "none"
    assert resume[1].tooltip == inputs.CHECKPOINTING and resume[1].default is False
    schedule = inputs.schedule_inputs("pairs", "Save.", "Show.", dtype_tooltip="Precision.")
    assert schedule[0].tooltip == "Seeds pairs (fixed: a re-queue does not retrain)."
    assert (schedule[1].options, schedule[1].tooltip) == (["fp32", "bf16"], "Precision.")
    assert [i.default for i in inputs.lora_inputs()] == [16, 16.0]


def test_node_hooks_hand_the_trainer_its_callbacks_and_the_node_as_trainer(tiny_sd15):
    inputs = pack_submodule("nodes.common.training_inputs")
    written = []

    @dataclass
    class Run:
        steps: int = 4

    hooks = inputs.node_hooks("Test training", Run(), tiny_sd15[0], lambda r: written.append(r) or "x/1", "loading")
    assert set(hooks) == {"checkpoint", "on_preview", "extra_metadata", "progress"}
    assert hooks["extra_metadata"] == {"trainer": "node"} and hooks["on_preview"](1, None) is None
    assert hooks["progress"].texts == ["Test training: loading"] and hooks["progress"].steps == 4
    assert hooks["checkpoint"]("r") == "x/1" and hooks["progress"].save_partial("s") == "x/1" and written == ["r", "s"]


def test_cli_options_are_named_as_the_settings_fields():
    p = train_cli.common_parser("test", 1e-4)
    train_cli.add_options(p, float, selection_noise=1.0, decoupling_probability=0.5)
    train_cli.add_options(p, int, k=24)
    train_cli.lora_options(p)
    train_cli.mask_mode_option(p, ["irregular", "given"])
    opts = p.parse_args(["--dataset", "d", "--k", "3", "--decoupling-probability", "0.25"])
    got = {k: vars(opts)[k] for k in ("k", "selection_noise", "decoupling_probability", "lora_rank", "lora_alpha")}
    assert got == {"k": 3, "selection_noise": 1.0, "decoupling_probability": 0.25, "lora_rank": 16, "lora_alpha": 16.0}
    assert opts.mask_mode == "irregular" and opts.learning_rate == 1e-4
    with pytest.raises(SystemExit):
        p.parse_args(["--dataset", "d", "--mask-mode", "box"])
