"""scripts/train_ppo.py: the rollout bookkeeping exactly, the three reference set-ups, and the run folder:
exact resume, broken and foreign checkpoints, SIGTERM, and checkpoints that are never unpickled.

Whether PPO raises a trained reward model's score is shown in tests/test_rlhf_pipeline.py, where the
reward model comes from train_rm.py.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, REPO, kill_when, run_script

sys.path.insert(0, str(REPO / "scripts"))
import train_ppo  # noqa: E402

FAST = ["--data_path", "data_dir/sample_sft.train.json", "--max_new_tokens", "8", "--rollout_batch_size", "8",
        "--mini_batch_size", "4", "--ppo_epochs", "2", "--learning_rate", "1e-3", "--template", "belle"]  # fmt: skip


def free_port() -> str:
    """A port for the launcher's rendezvous, so a launcher run elsewhere on the machine (29500) cannot clash."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def ppo(*args: str, check: bool = True):
    return run_script(PYTHON, "scripts/train_ppo.py", *args, check=check)


def ppo_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "ppo_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def random_reward_model(tiny_llama, tmp_path_factory) -> Path:
    """A reward model with a random score head on the tiny Llama: enough to drive the mechanics."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_response_mask_stops_at_the_first_stop_token():
    responses = torch.tensor([[5, 6, 2, 9, 2], [2, 7, 7, 7, 7], [5, 6, 7, 8, 9], [5, 32, 6, 2, 3]])
    mask, ended = train_ppo.response_mask_after_stop(responses, [2, 32])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert ended.tolist() == [True, True, False, True]


def test_attention_is_kept_off_cudnn():
    """PPO's batch width changes every step, and cuDNN's attention plans every new shape anew (on an H200 the
    static-batch PPO step took 2.98 s with it, 2.37 s without; tests/gpu/run_ppo_speed.sh): the switch turns
    sdpa's cuDNN backend off, so flash or memory-efficient kernels serve."""
    from common.modeling import avoid_cudnn_attention

    before = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        avoid_cudnn_attention()
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_pad_rows_left_and_right():
    ids, mask = train_ppo.pad_rows([[4, 5, 6], [7]], pad_id=0, left=True)
    assert ids.tolist() == [[4, 5, 6], [0, 0, 7]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = train_ppo.pad_rows([[4, 5, 6], [7]], pad_id=0, left=False)
    assert ids.tolist() == [[4, 5, 6], [7, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-bloom"])
def test_rollout_logprobs_equal_the_sampling_distribution(tiny_models, arch):
    """The log-probs PPO trains on must be those generate() sampled from: left padding, position ids
    (LLaMA) or ALiBi from the mask (BLOOM), and the temperature all have to agree."""
    import inspect

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models / arch, dtype=torch.float32).eval()
    prompts = [[1, 100, 200, 300, 400, 500], [1, 42], [1, 7, 8, 9]]  # different lengths: real left padding
    ids, mask = train_ppo.pad_rows(prompts, pad_id=3, left=True)
    temperature = 0.7
    torch.manual_seed(0)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_k=0,
                         top_p=1.0, max_new_tokens=6, min_new_tokens=6, pad_token_id=3, eos_token_id=[],
                         output_logits=True, return_dict_in_generate=True)  # fmt: skip
    responses = out.sequences[:, ids.shape[1] :]
    sampled = torch.stack(out.logits, dim=1).float() / temperature
    expected = sampled.log_softmax(-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)

    takes_positions = "position_ids" in inspect.signature(model.forward).parameters
    attention = torch.cat([mask, torch.ones_like(responses)], dim=1)
    with torch.no_grad():
        logits = train_ppo.causal_forward(model, out.sequences, attention, takes_positions).logits
    got = train_ppo.response_logprobs(logits, responses, ids.shape[1], temperature)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("mode", ["lora", "lora_from_sft_adapter", "full", "qlora"])
def test_reference_is_the_starting_policy(tmp_path, tiny_llama, tiny_lora_adapter, random_reward_model, mode):
    """Whatever holds the reference (adapter disabled, a frozen adapter copy, a frozen model copy), the
    first rollouts come from a policy equal to it: KL exactly 0 and ratio 1 on the first mini-batch.
    Afterwards the trained weights have moved and only they are saved."""
    out = tmp_path / mode
    extra = {"lora": ["--use_lora", "true"], "full": ["--use_lora", "false"],
             # The policy's base in 4 bits; generation runs it without gradients before every update, which
             # must not cost the update its gradients (common.modeling keeps bitsandbytes' trainable layout).
             "qlora": ["--use_lora", "true", "--quantization_bit", "4"],
             "lora_from_sft_adapter": ["--use_lora", "true", "--adapter_name_or_path", str(tiny_lora_adapter)]}  # fmt: skip
    ppo("--model_name_or_path", str(tiny_llama), "--reward_model", str(random_reward_model), "--max_steps", "2",
        "--output_dir", str(out), *FAST, *extra[mode])  # fmt: skip
    log = ppo_log(out)
    assert len(log) == 2
    assert abs(log[0]["objective/kl"]) < 1e-5, log[0]
    assert log[1]["objective/kl"] != 0.0  # the policy moved after the first update
    for entry in log:
        assert all(value == value for value in entry.values())  # no NaN anywhere

    head = load_file(str(out / "value_head.safetensors"))
    assert set(head) == {"weight", "bias"} and head["weight"].shape == (1, 256)
    if mode == "full":
        before, after = (
            load_file(str(tiny_llama / "model.safetensors")),
            load_file(str(out / "model.safetensors")),
        )
        assert [name for name in before if torch.equal(before[name], after[name])] == []
        return
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert not any(".ref." in name for name in adapter)  # the frozen reference copy is not saved
    assert all(not torch.equal(t, torch.zeros_like(t)) for name, t in adapter.items() if "lora_B" in name)
    if mode == "lora_from_sft_adapter":
        start = load_file(str(tiny_lora_adapter / "adapter_model.safetensors"))
        assert adapter.keys() == start.keys()
        assert all(not torch.equal(adapter[k], start[k]) for k in start if "lora_B" in k)


LORA_RUN = ["--use_lora", "true", "--max_steps", "4", "--save_steps", "1", *FAST]


def resume_args(tiny_llama: Path, random_reward_model: Path) -> list[str]:
    return ["--model_name_or_path", str(tiny_llama), "--reward_model", str(random_reward_model), *LORA_RUN]


@pytest.fixture(scope="module")
def uninterrupted(tiny_llama, random_reward_model, tmp_path_factory) -> Path:
    """A 4-step LoRA run saving every step (rotation keeps checkpoint-2 and -3): what every resumed or
    interrupted run below must equal bit for bit."""
    out = tmp_path_factory.mktemp("ppo") / "whole"
    ppo(*resume_args(tiny_llama, random_reward_model), "--output_dir", str(out))
    return out


def assert_same_run(whole: Path, other: Path) -> None:
    """Every logged statistic but the timings, the adapter and the value head are bitwise equal, and the
    summary covers the whole run."""
    untimed = [
        [{k: v for k, v in e.items() if not k.startswith("time/")} for e in ppo_log(d)]
        for d in (whole, other)
    ]
    assert untimed[0] == untimed[1]
    for name in ("adapter_model.safetensors", "value_head.safetensors"):
        a, b = load_file(str(whole / name)), load_file(str(other / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    results = json.loads((other / "ppo_results.json").read_text())
    assert results["ppo_steps"] == 4
    assert results["first_score"] == json.loads((whole / "ppo_results.json").read_text())["first_score"]


def test_resume_skips_a_broken_checkpoint_and_equals_uninterrupted_run(
    uninterrupted, tiny_llama, random_reward_model, tmp_path
):
    """The newest checkpoint has a truncated file: it is skipped with a log line and the run resumes from
    the one before. Folders that are not this run's numeric checkpoints survive the rotation."""
    from common.runs import RUN_ID_FILE

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(uninterrupted / RUN_ID_FILE, resumed)
    for step in (2, 3):
        shutil.copytree(uninterrupted / f"checkpoint-{step}", resumed / f"checkpoint-{step}")
    optimizer = resumed / "checkpoint-3" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:1000])  # a save cut short by a full disk
    (resumed / ".checkpoint-4.partial").mkdir()  # a crash mid-save
    (resumed / "checkpoint-notes").mkdir()  # the user's notes: today's first save crashed on the name
    (resumed / "checkpoint-notes" / "todo.txt").write_text("compare kl_coef 0.05 and 0.1")
    foreign = resumed / "checkpoint-1"  # another run's checkpoint, which rotation would have deleted
    foreign.mkdir()
    (foreign / "checkpoint_manifest.json").write_text(json.dumps({"run_id": "another-run", "files": {}}))

    result = ppo(*resume_args(tiny_llama, random_reward_model), "--output_dir", str(resumed),
                 "--resume_from_checkpoint", "true")  # fmt: skip
    assert f"skipping {resumed / 'checkpoint-3'}: optimizer.pt size" in result.stderr
    assert f"resumed from {resumed / 'checkpoint-2'} at PPO step 2" in result.stderr
    assert_same_run(uninterrupted, resumed)
    assert json.loads((resumed / "ppo_results.json").read_text())["resumed_at_steps"] == [2]
    assert (resumed / "checkpoint-notes" / "todo.txt").is_file() and foreign.is_dir()
    assert sorted(p.name for p in resumed.glob("checkpoint-[0-9]*")) == [
        "checkpoint-1",
        "checkpoint-2",
        "checkpoint-3",
    ]


def test_sigterm_saves_a_checkpoint_and_exits_143(uninterrupted, tiny_llama, random_reward_model, tmp_path):
    """SIGTERM mid-run: the step finishes, a complete checkpoint is saved, exit 143; resuming from it gives
    the uninterrupted run bit for bit."""
    import signal
    import subprocess

    from common.runs import checkpoint_problem, read_run_id

    out = tmp_path / "stopped"
    args = [*resume_args(tiny_llama, random_reward_model), "--save_steps", "100", "--output_dir", str(out)]
    process = subprocess.Popen([PYTHON, "scripts/train_ppo.py", *args], cwd=REPO, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)  # fmt: skip
    seen = []
    for line in process.stderr:  # the end of step 1: stop during step 1 or 2, before the last one
        seen.append(line)
        if "step 1/4" in line:
            process.send_signal(signal.SIGTERM)
            break
    stderr = "".join(seen) + process.communicate(timeout=300)[1]
    assert process.returncode == 143, stderr[-3000:]
    assert "stopped by SIGTERM after step" in stderr and "Traceback" not in stderr
    checkpoints = list(out.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and checkpoint_problem(checkpoints[0], read_run_id(out)) is None
    assert not (out / "adapter_model.safetensors").exists()  # an unfinished run writes no final policy

    ppo(*args, "--resume_from_checkpoint", "true")
    assert_same_run(uninterrupted, out)


def test_sigkill_mid_run_and_the_resume_equals_the_uninterrupted_run(
    uninterrupted, tiny_llama, random_reward_model, tmp_path
):
    import signal

    out = tmp_path / "killed"
    args = [*resume_args(tiny_llama, random_reward_model), "--output_dir", str(out)]
    command = [PYTHON, "scripts/train_ppo.py", *args]
    assert kill_when(command, out / "checkpoint-2" / "checkpoint_manifest.json") == -signal.SIGKILL
    assert not (out / "adapter_model.safetensors").exists()

    result = ppo(*args, "--resume_from_checkpoint", "true")
    resumed_at = int(result.stderr.split(" at PPO step ")[1].split()[0])
    assert resumed_at >= 2  # checkpoint-2, or a later one the run finished saving before the kill landed
    assert_same_run(uninterrupted, out)


def test_a_planted_pickle_never_runs(uninterrupted, tiny_llama, random_reward_model, tmp_path):
    """A pickle in the checkpoint (accelerate's custom_checkpoint_0.pkl, replaced by one whose __reduce__
    writes a file), even listed in a rewritten manifest: refused by name before anything is loaded."""
    from common.runs import RUN_ID_FILE, read_run_id, write_checkpoint_manifest

    marker = tmp_path / "pwned"
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(uninterrupted / RUN_ID_FILE, resumed)
    checkpoint = shutil.copytree(uninterrupted / "checkpoint-2", resumed / "checkpoint-2")
    (checkpoint / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(WritesAFile(marker)))
    write_checkpoint_manifest(checkpoint, read_run_id(resumed), 2)
    result = ppo(*resume_args(tiny_llama, random_reward_model), "--output_dir", str(resumed),
                 "--resume_from_checkpoint", "true", check=False)  # fmt: skip
    assert result.returncode != 0 and not marker.exists()
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: refusing to resume") and "custom_checkpoint_0.pkl" in error, (
        result.stderr[-2000:]
    )
    assert "Traceback" not in result.stderr


class WritesAFile:
    """What a hostile pickle does: unpickling it calls open(path, "w")."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_state_files_load_only_tensors_and_plain_containers(tmp_path):
    """optimizer.pt / scheduler.pt are read with weights_only=True: a replaced file that would run code is a
    one-line error naming it, and the code does not run."""
    marker = tmp_path / "pwned"
    torch.save({"state": {}, "param_groups": [WritesAFile(marker)]}, tmp_path / "optimizer.pt")
    with pytest.raises(train_ppo.RunError, match="optimizer.pt"):
        train_ppo.load_torch_state(tmp_path / "optimizer.pt")
    assert not marker.exists()
    torch.save({"last_epoch": 3, "_last_lr": [1e-3], "step": torch.tensor(3.0)}, tmp_path / "scheduler.pt")
    assert train_ppo.load_torch_state(tmp_path / "scheduler.pt")["last_epoch"] == 3


def test_bad_settings_are_one_line_errors(tmp_path, tiny_llama, random_reward_model):
    zero3 = tmp_path / "zero3.json"
    zero3.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    cases = [
        (["--deepspeed", str(zero3)], "ZeRO-3"),
        (["--rollout_batch_size", "6"], "multiple of"),
        (["--dataset", "pretrain_corpus"], "PPO needs prompts"),
        (["--reward_model", str(tmp_path / "missing")], "missing"),
    ]
    for extra, message in cases:
        result = ppo("--model_name_or_path", str(tiny_llama), "--reward_model", str(random_reward_model),
                     *FAST, "--output_dir", str(tmp_path / "out"), *extra, check=False)  # fmt: skip
        assert result.returncode != 0, extra
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_deepspeed_zero2_run_matches_the_plain_run(tmp_path, tiny_llama, random_reward_model):
    """Under the deepspeed launcher (ZeRO-2; DeepSpeed's CPU accelerator here) the same seeded run
    samples the same rollouts and ends with the same adapter as without it."""
    args = ["--model_name_or_path", str(tiny_llama), "--reward_model", str(random_reward_model),
            "--use_lora", "true", "--max_steps", "2", *FAST]  # fmt: skip
    ppo(*args, "--output_dir", str(tmp_path / "plain"))
    result = run_script(str(Path(PYTHON).parent / "deepspeed"), "--num_gpus=1", "--master_port", free_port(), "scripts/train_ppo.py", *args, "--output_dir",
                        str(tmp_path / "zero2"), "--deepspeed", "run_config/tiny/deepspeed_config.json")  # fmt: skip
    assert "DistributedType.DEEPSPEED" in result.stderr
    plain, zero2 = ppo_log(tmp_path / "plain"), ppo_log(tmp_path / "zero2")
    for key in ("objective/score", "objective/kl", "response/length"):
        assert [e[key] for e in zero2] == pytest.approx([e[key] for e in plain], abs=1e-4), key
    a = load_file(str(tmp_path / "plain" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "zero2" / "adapter_model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_torchrun_two_processes_share_the_prompts(tmp_path, tiny_llama, random_reward_model):
    out = tmp_path / "ddp"
    result = run_script(str(Path(PYTHON).parent / "torchrun"), "--nproc_per_node=2", "--master_port", free_port(), "scripts/train_ppo.py",
                        "--model_name_or_path", str(tiny_llama), "--reward_model", str(random_reward_model),
                        "--use_lora", "true", "--max_steps", "2", *FAST, "--output_dir", str(out))  # fmt: skip
    assert "2 process(es)" in result.stderr and "(120 per device)" in result.stderr, result.stderr[-3000:]
    log = ppo_log(out)
    assert len(log) == 2 and abs(log[0]["objective/kl"]) < 1e-5
    assert (out / "adapter_model.safetensors").is_file()
