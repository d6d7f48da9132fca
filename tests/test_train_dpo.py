"""scripts/train_dpo.py: every loss type raises the chosen-over-rejected log-probability margin (measured
here with plain torch), the loss TRL optimises is common/rlhf.py's, and each reference set-up holds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, run_script

DATA = "data_dir/sample_preference.json"
PAIRS = 40
COMMON = ["--data_path", DATA, "--max_samples", str(PAIRS), "--cutoff_len", "128", "--batch_size", "8",
          "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--lr_scheduler_type",
          "constant", "--val_set_size", "8", "--val_set_rate", "0.2", "--save_steps", "1000",
          "--eval_steps", "1000", "--logging_steps", "1"]  # fmt: skip
METHOD = {"lora": ["--use_lora", "true", "--lora_target_modules", "all", "--learning_rate", "3e-3"],
          "full": ["--use_lora", "false", "--learning_rate", "2e-4"]}  # fmt: skip


def train_dpo(*args: str, check: bool = True):
    return run_script(PYTHON, "scripts/train_dpo.py", *args, check=check)


def tokenised_pairs(model_dir: Path, held_out: bool):
    from common.data import load_preference_records, tokenise_preferences
    from common.modeling import load_tokenizer
    from common.training import PreferenceTrainingConfig, split_pairs

    tokenizer = load_tokenizer(str(model_dir))
    pairs = tokenise_preferences(load_preference_records(DATA, max_samples=PAIRS), tokenizer, "belle", 128)
    train, dev = split_pairs(pairs, PreferenceTrainingConfig(val_set_size=8, val_set_rate=0.2))
    return dev if held_out else train


def sequence_logps(model, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log p(answer | prompt) of the chosen and the rejected answer of every pair."""

    def logp(prompt: list[int], answer: list[int]) -> torch.Tensor:
        ids = torch.tensor([prompt + answer])
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        return logits.log_softmax(-1).gather(-1, torch.tensor(answer)[:, None]).sum()

    with torch.no_grad():
        chosen = torch.stack(
            [logp(p, c) for p, c in zip(pairs["prompt_ids"], pairs["chosen_ids"], strict=True)]
        )
        rejected = torch.stack(
            [logp(p, r) for p, r in zip(pairs["prompt_ids"], pairs["rejected_ids"], strict=True)]
        )
    return chosen, rejected


def load_policy(base: Path, out: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if (out / "adapter_config.json").is_file():
        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(out)).eval()
    return AutoModelForCausalLM.from_pretrained(out).eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dpo")
    done = {}
    for loss_type, method in (("sigmoid", "lora"), ("ipo", "full"), ("hinge", "lora")):
        out = root / f"{loss_type}-{method}"
        train_dpo("--model_name_or_path", str(tiny_llama), "--output_dir", str(out), "--loss_type", loss_type,
                  "--max_steps", "12", *COMMON, *METHOD[method])  # fmt: skip
        done[loss_type] = out
    return done


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_dpo_raises_the_chosen_over_rejected_margin(runs, tiny_llama, loss_type):
    from transformers import AutoModelForCausalLM

    train = tokenised_pairs(tiny_llama, held_out=False)
    chosen, rejected = sequence_logps(AutoModelForCausalLM.from_pretrained(tiny_llama).eval(), train)
    before = (chosen - rejected).mean().item()
    chosen, rejected = sequence_logps(load_policy(tiny_llama, runs[loss_type]), train)
    after = (chosen - rejected).mean().item()
    print(f"DPO {loss_type}: margin {before:.2f} -> {after:.2f} nats")
    assert after > before + 5.0, (before, after)  # nats, averaged over the 32 training pairs
    assert json.loads((runs[loss_type] / "dpo_config.json").read_text())["loss_type"] == loss_type


def test_trl_loss_is_common_rlhf_dpo_loss(runs, tiny_llama):
    """The held-out loss the run reported equals common.rlhf.dpo_loss on log-probs computed here: the
    policy (base + adapter) against the reference (the base: the adapter disabled)."""
    from transformers import AutoModelForCausalLM

    from common.rlhf import dpo_loss

    dev = tokenised_pairs(tiny_llama, held_out=True)
    policy_chosen, policy_rejected = sequence_logps(load_policy(tiny_llama, runs["sigmoid"]), dev)
    ref_chosen, ref_rejected = sequence_logps(AutoModelForCausalLM.from_pretrained(tiny_llama).eval(), dev)
    ours = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1, loss_type="sigmoid")
    reported = json.loads((runs["sigmoid"] / "eval_results.json").read_text())
    assert ours.mean().item() == pytest.approx(reported["eval_loss"], rel=1e-4)
    margins = 0.1 * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    assert margins.mean().item() == pytest.approx(reported["eval_rewards/margins"], rel=1e-3)


def test_continuing_an_sft_adapter_starts_at_its_own_reference(tmp_path, tiny_llama, tiny_lora_adapter):
    """From an SFT adapter, the reference is a frozen copy of that adapter: the first loss is exactly
    log 2 (policy = reference), although the adapter changes the model."""
    out = tmp_path / "from-adapter"
    train_dpo("--model_name_or_path", str(tiny_llama), "--adapter_name_or_path", str(tiny_lora_adapter),
              "--output_dir", str(out), "--max_steps", "4", *COMMON, *METHOD["lora"])  # fmt: skip
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    saved = load_file(str(out / "adapter_model.safetensors"))
    start = load_file(str(tiny_lora_adapter / "adapter_model.safetensors"))
    assert saved.keys() == start.keys()  # the trained adapter only: not TRL's "ref" copy
    assert all(not torch.equal(saved[k], start[k]) for k in start)


def test_bad_input_is_one_line(tmp_path, tiny_llama):
    result = train_dpo("--model_name_or_path", str(tiny_llama), "--data_path", "data_dir/sample_sft.train.json",
                       "--output_dir", str(tmp_path / "a"), check=False)  # fmt: skip
    assert result.returncode != 0 and "preference pairs" in result.stderr and "Traceback" not in result.stderr
    result = train_dpo("--loss_type", "kto", "--output_dir", str(tmp_path / "b"), check=False)
    assert (
        result.returncode != 0 and "sigmoid, ipo, hinge" in result.stderr and "Traceback" not in result.stderr
    )
