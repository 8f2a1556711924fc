"""Schema-driven fuzzing: every widget input of the pack's nodes in shipped workflows, set to values its schema (what
/object_info serves: type, min, max, options) marks as wrong, plus NaN / inf / empty / huge, through ComfyUI's own
validation and executor. Each case must end in an error that names the input; a run that succeeds with a value its
schema rules out is a silent wrong result. Files present before a case must still be there, unchanged, after it.
Counts are printed (pytest -s)."""

import asyncio
import hashlib
import math
import uuid

import pytest

from exemplar_dev import host, workflows
from exemplar_dev.paths import WORKFLOWS_DIR

WORKFLOWS = ("paint_by_example", "hint_image_inpaint")
MAX_CASES_PER_WORKFLOW = 25
HUGE_STRING = "x" * 5000


def bad_values(spec) -> list[tuple[object, bool]]:
    """(value, the schema rules it out) for one input spec of INPUT_TYPES."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if isinstance(kind, list) or kind == "COMBO":
        return [("no_such_choice", True), ("", True)]
    if kind in ("INT", "FLOAT"):
        values = []
        if "min" in options:
            values.append((options["min"] - 1, True))
        if "max" in options:
            values.append((options["max"] + 1, True))
        if kind == "FLOAT":
            values += [(math.nan, True), (math.inf, True)]
        else:
            values.append((2**70, True))
        return values
    if kind == "STRING":
        return [("", False), ("\x00", False), (HUGE_STRING, False)]
    return []


def snapshot(folders) -> dict:
    files = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                files[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return files


class Runner:
    """One PromptExecutor per workflow, so unchanged upstream nodes come from its cache between cases."""

    def __init__(self):
        self.host = host.boot()
        compat = host.pack_submodule("nodes.common.comfyui_compat")
        self.executor = self.host.execution.PromptExecutor(
            host._SilentServer(), cache_type=self.host.execution.CacheType.CLASSIC,
            cache_args=dict(compat.EXECUTOR_CACHE_ARGS),
        )  # fmt: skip

    def run(self, prompt) -> tuple[str, str]:
        """("ok", "") or ("error", the message and details ComfyUI reports)."""
        prompt_id = str(uuid.uuid4())
        valid = asyncio.run(self.host.execution.validate_prompt(prompt_id, prompt, None))
        if not valid[0] or valid[3]:  # node_errors: ComfyUI drops the failing outputs and runs the others
            return "error", repr(valid[1]) + repr(valid[3])
        self.executor.execute(prompt, prompt_id, {}, valid[2])
        if self.executor.success:
            return "ok", ""
        errors = [data for event, data in self.executor.status_messages if event == "execution_error"]
        reported = " ".join(str(e.get("exception_message", e)) for e in errors)
        return "error", reported or repr(self.executor.status_messages)


@pytest.mark.slow
def test_fuzzed_widget_inputs_give_clear_errors_and_no_silent_results(comfy, model_folder, output_folder):
    model_folder("loras")
    model_folder("exemplar")
    counts = dict(cases=0, clear=0, unclear=0, silent_wrong=0, accepted=0, data_lost=0)
    findings = []
    for name in WORKFLOWS:
        base = workflows.load_api(WORKFLOWS_DIR / f"{name}.json")
        for node in base.values():
            if isinstance(node["inputs"].get("steps"), int):
                node["inputs"]["steps"] = 1
        runner = Runner()
        assert runner.run(base) == ("ok", ""), name
        cases = 0
        for node_id, node in base.items():
            if not node["class_type"].startswith("Exemplar"):
                continue
            types = workflows.input_defs(node["class_type"])
            specs = {**types.get("required", {}), **types.get("optional", {})}
            for input_name, value in node["inputs"].items():
                if isinstance(value, list) or input_name not in specs:
                    continue  # a link, or a hidden input
                for bad, ruled_out in bad_values(specs[input_name]):
                    if cases >= MAX_CASES_PER_WORKFLOW:
                        break
                    cases += 1
                    prompt = {k: {**v, "inputs": dict(v["inputs"])} for k, v in base.items()}
                    prompt[node_id]["inputs"][input_name] = bad
                    before = snapshot([output_folder])
                    outcome, message = runner.run(prompt)
                    after = snapshot([output_folder])
                    lost = [path for path, digest in before.items() if after.get(path) != digest]
                    counts["cases"] += 1
                    counts["data_lost"] += bool(lost)
                    label = f"{name}: {node['class_type']}.{input_name} = {bad!r:.40}"
                    print(outcome, label, message[:160].replace("\n", " "), flush=True)
                    if outcome == "error":
                        if input_name in message:
                            counts["clear"] += 1
                        else:
                            counts["unclear"] += 1
                            findings.append(f"unclear  {label}: {message[:200]}")
                    elif ruled_out:
                        counts["silent_wrong"] += 1
                        findings.append(f"silent   {label}")
                    else:
                        counts["accepted"] += 1
    print("\nfuzz counts:", counts)
    print("\n".join(findings))
    assert counts["cases"] >= 12  # every widget of the pack nodes in these two workflows, each bad value
    assert counts["silent_wrong"] == 0 and counts["data_lost"] == 0 and counts["unclear"] == 0, findings
