"""Faults and load against a real ComfyUI server (the host's main.py, --cpu, tiny models): prints figures, exits 1
on a failed check.

1. RSS: one shipped workflow run N times in one server with a new seed each time; the resident set after
   warm-up (run 3) and its largest growth after that.
2. Queue: Q prompts posted at once; all must finish with status success.
3. kill -9 during training: the DreamBooth workflow with many steps and a checkpoint every few steps is queued,
   the server's process group is killed with SIGKILL while it trains; then no partial file may carry a final or
   checkpoint name (every such file must read whole), temporaries left by the killed writer are counted, and a
   second server must run the workflow again and write the LoRA.

    bash scripts/in_host.sh bench/fault_load_check.py [--runs 20] [--queued 10] [--workflow paint_by_example]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from exemplar_dev import workflows  # noqa: E402
from exemplar_dev.paths import BASE_DIR, WORKFLOWS_DIR  # noqa: E402
from exemplar_dev.server import running_server  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def api_prompt(name: str, steps: int | None = 2, **inputs_by_class) -> dict:
    prompt = workflows.load_api(WORKFLOWS_DIR / f"{name}.json")
    for node in prompt.values():
        if steps is not None and isinstance(node["inputs"].get("steps"), int):
            node["inputs"]["steps"] = min(node["inputs"]["steps"], steps)
        node["inputs"].update(inputs_by_class.get(node["class_type"], {}))
    return prompt


def reseed(prompt: dict, seed: int) -> dict:
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        for key in ("seed", "noise_seed"):
            if isinstance(node["inputs"].get(key), int):
                node["inputs"][key] = seed
    return prompt


def queue(server, prompt: dict) -> str:
    return json.loads(server.post("/prompt", {"prompt": prompt, "client_id": "fault-load-check"}))["prompt_id"]


def wait(server, prompt_ids: list[str], timeout: float = 1800) -> dict[str, str]:
    deadline, status = time.monotonic() + timeout, {}
    while len(status) < len(prompt_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"prompts unfinished after {timeout} s: {set(prompt_ids) - set(status)}")
        for prompt_id in prompt_ids:
            if prompt_id not in status:
                try:
                    entry = server.get(f"/history/{prompt_id}", timeout=120).get(prompt_id)
                except (TimeoutError, urllib.error.URLError):  # a busy CPU server answers late
                    continue
                if entry and entry.get("status", {}).get("completed") is not None:
                    status[prompt_id] = entry["status"].get("status_str", "?")
        time.sleep(0.5)
    return status


def check_rss_and_queue(name: str, runs: int, queued: int) -> bool:
    prompt = api_prompt(name)
    with running_server(startup_timeout=900) as server:
        pid = server.process.pid
        figures = []
        for run in range(runs):
            (result,) = wait(server, [queue(server, reseed(prompt, 1000 + run))]).values()
            if result != "success":
                print(f"run {run + 1} ended with {result}:\n{server.log_tail()}")
                return False
            figures.append(rss_mib(pid))
        warm = figures[2]
        growth = max(figures[3:]) - warm
        print(f"RSS over {runs} runs of {name} (MiB): " + " ".join(f"{v:.0f}" for v in figures))
        print(f"RSS after warm-up (run 3) {warm:.0f} MiB; largest growth after it {growth:+.1f} MiB "
              f"({100 * growth / warm:+.2f} %)")
        start = time.monotonic()
        ids = [queue(server, reseed(prompt, 5000 + i)) for i in range(queued)]
        results = wait(server, ids)
        succeeded = sum(r == "success" for r in results.values())
        print(f"{queued} prompts queued at once: {succeeded} succeeded in {time.monotonic() - start:.0f} s; "
              f"RSS then {rss_mib(pid):.0f} MiB")
    return succeeded == queued and growth <= 0.05 * warm


def check_kill_during_training(after_seconds: float) -> bool:
    from safetensors import safe_open

    name = f"fault_check_{os.getpid()}"
    loras = BASE_DIR / "models" / "loras"
    train = {"ExemplarDreamBoothTrain": {"lora_name": name, "steps": 400, "checkpoint_every": 5, "overwrite": True}}
    prompt = api_prompt("dreambooth_train_and_sample", steps=None, **train)
    ok = True
    with running_server(startup_timeout=900) as server:
        prompt_id = queue(server, prompt)
        deadline = time.monotonic() + 600
        while not server.get("/queue", timeout=120)["queue_running"]:
            if time.monotonic() > deadline:
                raise RuntimeError("training never started")
            time.sleep(0.2)
        time.sleep(after_seconds)
        finished = server.get(f"/history/{prompt_id}", timeout=120).get(prompt_id)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        print(f"killed the server (SIGKILL) {after_seconds:.0f} s into training; finished before: {bool(finished)}")
    ours = sorted(p for p in loras.rglob("*") if p.is_file() and name in p.name)
    temporaries = [p for p in ours if p.name.startswith(".")]
    whole = 0
    for path in (p for p in ours if not p.name.startswith(".") and p.suffix == ".safetensors"):
        try:
            with safe_open(str(path), "pt") as f:
                for key in f.keys():
                    f.get_tensor(key)
            whole += 1
        except Exception as error:  # noqa: BLE001 - any failure to read is the finding
            print(f"PARTIAL FILE {path.name}: {error}")
            ok = False
    print(f"after kill -9: {whole} whole checkpoint file(s), {len(ours) - whole - len(temporaries)} partial or "
          f"other, {len(temporaries)} temporar(y/ies) of the killed writer ({[p.name for p in temporaries]})")
    rerun = api_prompt("dreambooth_train_and_sample", steps=2, **{
        "ExemplarDreamBoothTrain": {"lora_name": name, "steps": 2, "checkpoint_every": 0, "overwrite": True}})
    with running_server(startup_timeout=900) as server:
        (result,) = wait(server, [queue(server, rerun)]).values()
    final = loras / f"{name}.safetensors"
    print(f"re-run in a new server: {result}; {final.name} exists: {final.exists()}")
    ok = ok and result == "success" and final.exists()
    for path in loras.rglob("*"):
        if path.is_file() and name in path.name:
            path.unlink()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", default="paint_by_example")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--queued", type=int, default=10)
    parser.add_argument("--kill-after", type=float, default=8.0, help="seconds of training before SIGKILL")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    args = parser.parse_args()
    ok = True
    if not args.skip_load:
        ok = check_rss_and_queue(args.workflow, args.runs, args.queued) and ok
    if not args.skip_kill:
        try:
            ok = check_kill_during_training(args.kill_after) and ok
        except urllib.error.URLError as error:
            print(f"server error: {error}")
            ok = False
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
