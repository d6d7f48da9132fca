"""scripts/train_dpo.py: every loss type raises the chosen-over-rejected log-probability margin (measured
here with plain torch), every reference set-up starts equal to its policy, the loss TRL optimises is
common/rlhf.py's, and bad input stops with one line.

Three seeded runs cover the three loss types and the three reference set-ups of the script's docstring:
sigmoid continues an SFT adapter, ipo fine-tunes the full model, hinge trains a new LoRA adapter. Two more,
run in this process, cover the reference-free losses: ORPO trains a new LoRA adapter, SimPO the full model;
their per-token margin rises, their reported loss is common/rlhf.py's, and SimPO resumes bitwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, run_script

DATA = "data_dir/sample_preference.json"
PAIRS, HELD_OUT, CUTOFF, BETA = 20, 4, 64, 0.1
COMMON = ["--data_path", DATA, "--max_samples", str(PAIRS), "--cutoff_len", str(CUTOFF), "--beta", str(BETA),
          "--batch_size", "4", "--per_device_train_batch_size", "4",
          "--per_device_eval_batch_size", str(HELD_OUT),  # one eval batch: eval_loss is the mean over all pairs
          "--val_set_size", str(HELD_OUT), "--val_set_rate", "0.2", "--lr_scheduler_type", "constant",
          "--save_steps", "1000", "--eval_steps", "1000", "--logging_steps", "1"]  # fmt: skip
SETUPS = {  # loss type: (reference set-up, method and schedule)
    # from the random SFT adapter the steps are noisier: smaller and more of them
    "sigmoid": ("sft-adapter", ["--use_lora", "true", "--learning_rate", "2e-3", "--max_steps", "24"]),
    "ipo": ("full", ["--use_lora", "false", "--learning_rate", "2e-4", "--max_steps", "12"]),
    "hinge": ("new-lora", ["--use_lora", "true", "--lora_target_modules", "all", "--learning_rate", "3e-3",
                           "--max_steps", "12"]),
}  # fmt: skip
# Two cores shared with other test processes: torch's spinning worker threads slow a tiny model several
# times over there, and one thread gives the same numbers.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def train_dpo(*args: str, check: bool = True):
    return run_script(PYTHON, "scripts/train_dpo.py", *args, env=ONE_THREAD, check=check)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tokenised_pairs(model_dir: Path, held_out: bool):
    """The run's pairs, split as the script splits them (same template, cut, seed and held-out size)."""
    from common.data import load_preference_records, tokenise_preferences
    from common.modeling import load_tokenizer
    from common.training import PreferenceTrainingConfig, split_pairs

    tokenizer = load_tokenizer(str(model_dir))
    pairs = tokenise_preferences(load_preference_records(DATA, max_samples=PAIRS), tokenizer, "belle", CUTOFF)
    split = PreferenceTrainingConfig(val_set_size=HELD_OUT, val_set_rate=0.2)
    train, dev = split_pairs(pairs, split, split.seed)
    assert len(dev) == HELD_OUT
    return dev if held_out else train


def sequence_logps(model, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log p(answer | prompt) of the chosen and the rejected answer of every pair."""

    def logp(prompt: list[int], answer: list[int]) -> torch.Tensor:
        ids = torch.tensor([prompt + answer])
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        return logits.log_softmax(-1).gather(-1, torch.tensor(answer)[:, None]).sum()

    with torch.no_grad():
        chosen = [logp(p, c) for p, c in zip(pairs["prompt_ids"], pairs["chosen_ids"], strict=True)]
        rejected = [logp(p, r) for p, r in zip(pairs["prompt_ids"], pairs["rejected_ids"], strict=True)]
    return torch.stack(chosen), torch.stack(rejected)


def load_model(base: Path, adapter: Path | None = None):
    """The base model, or the base with a saved LoRA adapter on top (as generate.py loads it)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None and (adapter / "adapter_config.json").is_file():
        return PeftModel.from_pretrained(model, str(adapter)).eval()
    return model.eval()


def load_policy(base: Path, out: Path):
    return load_model(base, out) if (out / "adapter_config.json").is_file() else load_model(out)


@pytest.fixture(scope="module")
def runs(tiny_llama, tiny_lora_adapter, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dpo")
    done = {}
    for loss_type, (setup, method) in SETUPS.items():
        out = root / f"{loss_type}-{setup}"
        start = ["--adapter_name_or_path", str(tiny_lora_adapter)] if setup == "sft-adapter" else []
        train_dpo("--model_name_or_path", str(tiny_llama), *start, "--output_dir", str(out),
                  "--loss_type", loss_type, *COMMON, *method)  # fmt: skip
        done[loss_type] = out
    return done


def starting_model(loss_type: str, tiny_llama: Path, tiny_lora_adapter: Path):
    return load_model(tiny_llama, tiny_lora_adapter if SETUPS[loss_type][0] == "sft-adapter" else None)


@pytest.mark.parametrize("loss_type", list(SETUPS))
def test_dpo_raises_the_chosen_over_rejected_margin(runs, tiny_llama, tiny_lora_adapter, loss_type):
    from common.rlhf import dpo_loss

    out = runs[loss_type]
    assert json.loads((out / "dpo_config.json").read_text())["loss_type"] == loss_type
    # At step 0 the policy is its reference (h = 0) in every set-up, so the first loss is the h = 0 value:
    # log 2 for sigmoid, 1 for hinge, 1/(2 beta)^2 for ipo.
    zero = torch.zeros(1)
    at_start = dpo_loss(zero, zero, zero, zero, beta=BETA, loss_type=loss_type).item()
    first_loss = json.loads((out / "trainer_state.json").read_text())["log_history"][0]["loss"]
    assert first_loss == pytest.approx(at_start, abs=1e-4)

    train = tokenised_pairs(tiny_llama, held_out=False)
    chosen, rejected = sequence_logps(starting_model(loss_type, tiny_llama, tiny_lora_adapter), train)
    before = (chosen - rejected).mean().item()
    chosen, rejected = sequence_logps(load_policy(tiny_llama, out), train)
    after = (chosen - rejected).mean().item()
    print(f"DPO {loss_type} ({SETUPS[loss_type][0]}): margin {before:.2f} -> {after:.2f} nats")
    assert after > before + 5.0, (before, after)  # nats, averaged over the 16 training pairs


@pytest.mark.parametrize("loss_type", ["hinge", "sigmoid"])
def test_trl_loss_is_common_rlhf_dpo_loss(runs, tiny_llama, tiny_lora_adapter, loss_type):
    """The held-out loss the run reported equals common.rlhf.dpo_loss on log-probs computed here: the
    trained adapter against its reference, the base with the adapter disabled (new LoRA) or the starting
    SFT adapter (continued adapter)."""
    from common.rlhf import dpo_loss

    dev = tokenised_pairs(tiny_llama, held_out=True)
    policy_chosen, policy_rejected = sequence_logps(load_policy(tiny_llama, runs[loss_type]), dev)
    ref_chosen, ref_rejected = sequence_logps(starting_model(loss_type, tiny_llama, tiny_lora_adapter), dev)
    ours = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=BETA, loss_type=loss_type)
    reported = json.loads((runs[loss_type] / "eval_results.json").read_text())
    assert ours.mean().item() > 0.01  # not a case every pair has left the hinge's reach
    assert ours.mean().item() == pytest.approx(reported["eval_loss"], rel=1e-4)
    margins = BETA * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    assert margins.mean().item() == pytest.approx(reported["eval_rewards/margins"], rel=1e-3, abs=1e-5)


def test_continued_sft_adapter_is_saved_alone(runs, tiny_lora_adapter):
    """From an SFT adapter, the output is that adapter trained further: the same tensors, all changed, and
    no copy of TRL's frozen "ref" adapter beside it (the margin test loads it onto the base)."""
    out = runs["sigmoid"]
    saved = load_file(str(out / "adapter_model.safetensors"))
    start = load_file(str(tiny_lora_adapter / "adapter_model.safetensors"))
    assert saved.keys() == start.keys()
    assert all(not torch.equal(saved[k], start[k]) for k in start)
    assert not (out / "ref").exists()


def test_bad_input_is_one_line(tmp_path, tiny_llama):
    def error_lines(result) -> list[str]:
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
        return [line for line in result.stderr.splitlines() if line.startswith("error:")]

    sft_data = train_dpo("--model_name_or_path", str(tiny_llama), "--data_path", "data_dir/sample_sft.train.json",
                         "--output_dir", str(tmp_path / "a"), check=False)  # fmt: skip
    [line] = error_lines(sft_data)
    assert "'sample_sft.train.json'" in line and "preference pairs" in line
    unknown_loss = train_dpo("--loss_type", "kto", "--output_dir", str(tmp_path / "b"), check=False)
    [line] = error_lines(unknown_loss)
    assert "sigmoid, ipo, hinge" in line and "'kto'" in line
    assert not (tmp_path / "b").exists()  # refused before anything was written


# ---- ORPO and SimPO: reference-free losses on the same pairs ----------------------------------------------

GAMMA = 0.5
REFERENCE_FREE = {  # loss type: (policy, its beta, method and schedule)
    "orpo": ("new-lora", 0.5, ["--use_lora", "true", "--lora_target_modules", "all", "--learning_rate", "3e-3",
                               "--max_steps", "8"]),
    "simpo": ("full", 2.0, ["--use_lora", "false", "--learning_rate", "2e-4", "--max_steps", "8"]),
}  # fmt: skip
REFERENCE_FREE_STEPS = ["--save_steps", "6", "--save_total_limit", "null"]  # checkpoints 6 and 8


def reference_free_args(loss_type: str, tiny_llama: Path, out: Path) -> list[str]:
    _, beta, method = REFERENCE_FREE[loss_type]
    pairs = dict(zip(COMMON[::2], COMMON[1::2], strict=True))
    pairs.pop("--beta"), pairs.pop("--save_steps")
    common = [item for pair in pairs.items() for item in pair]
    return ["--model_name_or_path", str(tiny_llama), "--output_dir", str(out), "--loss_type", loss_type,
            "--beta", str(beta), "--simpo_gamma", str(GAMMA), *common, *method, *REFERENCE_FREE_STEPS]  # fmt: skip


def train_dpo_here(*args: str) -> Path:
    """train_dpo.main in this process: the imports are paid once, not per run."""
    import scripts.train_dpo as script

    return script.main(list(args))


@pytest.fixture(scope="module")
def reference_free_runs(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference-free")
    return {
        loss_type: train_dpo_here(*reference_free_args(loss_type, tiny_llama, root / loss_type))
        for loss_type in REFERENCE_FREE
    }


def average_logps(model, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Length-averaged log p(answer | prompt) of the chosen and the rejected answers, what ORPO and SimPO read."""
    chosen, rejected = sequence_logps(model, pairs)
    lengths = (torch.tensor([len(ids) for ids in pairs[key]], dtype=torch.float32)
               for key in ("chosen_ids", "rejected_ids"))  # fmt: skip
    chosen_len, rejected_len = lengths
    return chosen / chosen_len, rejected / rejected_len


@pytest.mark.parametrize("loss_type", list(REFERENCE_FREE))
def test_reference_free_losses_raise_the_margin(reference_free_runs, tiny_llama, loss_type):
    out = reference_free_runs[loss_type]
    assert json.loads((out / "dpo_config.json").read_text())["loss_type"] == loss_type
    train = tokenised_pairs(tiny_llama, held_out=False)
    start_chosen, start_rejected = average_logps(load_model(tiny_llama), train)
    chosen, rejected = average_logps(load_policy(tiny_llama, out), train)
    before, after = (start_chosen - start_rejected).mean().item(), (chosen - rejected).mean().item()
    print(f"{loss_type} ({REFERENCE_FREE[loss_type][0]}): per-token margin {before:.3f} -> {after:.3f} nats")
    assert after > before + 0.1, (before, after)  # nats per answer token, averaged over the 16 training pairs
    if loss_type == "orpo":  # its SFT term: the chosen answers became likelier too
        assert chosen.mean() > start_chosen.mean() + 0.5


@pytest.mark.parametrize("loss_type", list(REFERENCE_FREE))
def test_reference_free_loss_is_common_rlhf(reference_free_runs, tiny_llama, loss_type):
    """The held-out loss the run reported equals common.rlhf's orpo_loss / simpo_loss on log-probs computed here."""
    from common.rlhf import orpo_loss, simpo_loss

    _, beta, _ = REFERENCE_FREE[loss_type]
    dev = tokenised_pairs(tiny_llama, held_out=True)
    chosen, rejected = average_logps(load_policy(tiny_llama, reference_free_runs[loss_type]), dev)
    ours = (
        orpo_loss(chosen, rejected, beta)
        if loss_type == "orpo"
        else simpo_loss(chosen, rejected, beta, GAMMA)
    )
    reported = json.loads((reference_free_runs[loss_type] / "eval_results.json").read_text())
    assert ours.mean().item() == pytest.approx(reported["eval_loss"], rel=1e-4)
    assert (beta * (chosen - rejected)).mean().item() == pytest.approx(
        reported["eval_rewards/margins"], rel=1e-3
    )


def test_reference_free_resume_equals_the_uninterrupted_run(
    reference_free_runs, tiny_llama, tmp_path, monkeypatch
):
    """SimPO (our own Trainer, full fine-tuning) resumed from its middle checkpoint ends bitwise where the
    uninterrupted run ended."""
    import shutil

    from test_train_grpo import checkpoints_resumed

    straight = reference_free_runs["simpo"]
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for leftover in ("model.safetensors", "train_results.json", "all_results.json", "trainer_state.json"):
        (resumed / leftover).unlink()
    shutil.rmtree(resumed / "checkpoint-8")
    resumed_from = checkpoints_resumed(monkeypatch)
    train_dpo_here(*reference_free_args("simpo", tiny_llama, resumed), "--resume_from_checkpoint", "true")
    assert resumed_from == [resumed / "checkpoint-6"]
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and [name for name in a if not torch.equal(a[name], b[name])] == []
