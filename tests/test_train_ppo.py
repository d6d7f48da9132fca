"""scripts/train_ppo.py: the rollout bookkeeping exactly, the three reference set-ups, and resume.

Whether PPO raises a trained reward model's score is shown in tests/test_rlhf_pipeline.py, where the
reward model comes from train_rm.py.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, REPO, run_script

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


@pytest.mark.parametrize("mode", ["lora", "lora_from_sft_adapter", "full"])
def test_reference_is_the_starting_policy(tmp_path, tiny_llama, tiny_lora_adapter, random_reward_model, mode):
    """Whatever holds the reference (adapter disabled, a frozen adapter copy, a frozen model copy), the
    first rollouts come from a policy equal to it: KL exactly 0 and ratio 1 on the first mini-batch.
    Afterwards the trained weights have moved and only they are saved."""
    out = tmp_path / mode
    extra = {"lora": ["--use_lora", "true"], "full": ["--use_lora", "false"],
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


def test_resume_equals_uninterrupted_run(tmp_path, tiny_llama, random_reward_model):
    args = ["--model_name_or_path", str(tiny_llama), "--reward_model", str(random_reward_model),
            "--use_lora", "true", "--max_steps", "4", "--save_steps", "2", *FAST]  # fmt: skip
    whole = tmp_path / "whole"
    ppo(*args, "--output_dir", str(whole))
    assert (whole / "checkpoint-2" / "trainer_state.json").is_file()

    # A run stopped after its step-2 checkpoint, with a half-written step-4 checkpoint beside it.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")
    (resumed / ".checkpoint-4.partial").mkdir()
    ppo(*args, "--output_dir", str(resumed), "--resume_from_checkpoint", "true")

    assert [e["objective/score"] for e in ppo_log(resumed)] == [e["objective/score"] for e in ppo_log(whole)]
    a = load_file(str(whole / "adapter_model.safetensors"))
    b = load_file(str(resumed / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


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
