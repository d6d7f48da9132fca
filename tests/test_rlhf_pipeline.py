"""The whole pipeline on the tiny Llama, stage by stage as LLaMA-Factory users run it:
pre-training -> SFT -> reward model -> DPO, and SFT + reward model -> PPO or GRPO.

A toy task the test writes makes every stage's effect measurable: SFT teaches the policy to answer any
prompt with "Answer: yes." or "Answer: no." (half of the examples each); the preference pairs prefer
"yes". So the reward model must tell them apart, DPO must raise the chosen-over-rejected margin, and PPO
and GRPO (the reward model as its reward, LoRA, a KL term) must raise the reward model's score of the
policy's own samples while its KL to the SFT policy stays bounded. Each stage starts from the previous
stage's output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, REPO, run_script

STAGES = ["pt", "sft", "rm", "dpo", "ppo", "grpo"]
CHOSEN, REJECTED = "Answer: yes.", "Answer: no."
QUESTIONS = 48


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("toy")
    records = [
        json.loads(line) for line in (REPO / "data_dir/sample_sft.train.json").read_text().splitlines()
    ]
    questions = [r["instruction"] for r in random.Random(0).sample(records, QUESTIONS)]
    sft, pairs = folder / "sft.json", folder / "pairs.json"
    sft.write_text("".join(json.dumps({"instruction": q, "input": "", "output": answer}, ensure_ascii=False) + "\n"
                           for q in questions for answer in (CHOSEN, REJECTED)))  # fmt: skip
    pairs.write_text("".join(json.dumps({"instruction": q, "input": "", "chosen": CHOSEN, "rejected": REJECTED},
                                        ensure_ascii=False) + "\n" for q in questions))  # fmt: skip
    return {"sft": sft, "pairs": pairs}


class Pipeline:
    """Runs a stage (and the stages it needs) once per module; outputs under one temporary folder."""

    def __init__(self, root: Path, tiny_llama: Path, toy_data: dict[str, Path]) -> None:
        self.root, self.base, self.data, self.done = root, tiny_llama, toy_data, {}

    def __call__(self, stage: str) -> Path:
        if stage not in self.done:
            self.done[stage] = getattr(self, f"run_{stage}")(self.root / stage)
        return self.done[stage]

    def run_pt(self, out: Path) -> Path:
        run_script(PYTHON, "scripts/pretrain.py", "--model_config_file", "run_config/tiny/pt_config.json",
                   "--model_name_or_path", str(self.base), "--use_lora", "false", "--modules_to_save", "null",
                   "--max_steps", "20", "--learning_rate", "1e-3", "--output_dir", str(out))  # fmt: skip
        return out

    def run_sft(self, out: Path) -> Path:
        run_script(PYTHON, "scripts/finetune.py", "--model_name_or_path", str(self("pt")), "--data_path",
                   str(self.data["sft"]), "--output_dir", str(out), "--batch_size", "16",
                   "--per_device_train_batch_size", "16", "--num_epochs", "4", "--learning_rate", "2e-3",
                   "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--val_set_size", "0",
                   "--logging_steps", "2", "--save_steps", "1000", "--cutoff_len", "128")  # fmt: skip
        return out

    def run_rm(self, out: Path) -> Path:
        run_script(PYTHON, "scripts/train_rm.py", "--model_name_or_path", str(self("sft")), "--data_path",
                   str(self.data["pairs"]), "--output_dir", str(out), "--batch_size", "8",
                   "--per_device_train_batch_size", "8", "--max_steps", "20", "--learning_rate", "1e-3",
                   "--lr_scheduler_type", "constant", "--val_set_size", "8", "--val_set_rate", "0.2",
                   "--logging_steps", "5", "--save_steps", "1000", "--eval_steps", "1000")  # fmt: skip
        return out

    def run_dpo(self, out: Path) -> Path:
        run_script(PYTHON, "scripts/train_dpo.py", "--model_name_or_path", str(self("sft")), "--data_path",
                   str(self.data["pairs"]), "--output_dir", str(out), "--use_lora", "true", "--batch_size", "8",
                   "--per_device_train_batch_size", "8", "--max_steps", "15", "--learning_rate", "2e-3",
                   "--lr_scheduler_type", "constant", "--val_set_size", "8", "--val_set_rate", "0.2",
                   "--beta", "0.1", "--logging_steps", "5", "--save_steps", "1000", "--eval_steps", "1000")  # fmt: skip
        return out

    def run_ppo(self, out: Path) -> Path:
        run_script(PYTHON, "scripts/train_ppo.py", "--model_name_or_path", str(self("sft")), "--reward_model",
                   str(self("rm")), "--data_path", str(self.data["pairs"]), "--output_dir", str(out),
                   "--use_lora", "true", "--max_new_tokens", "12", "--rollout_batch_size", "16",
                   "--mini_batch_size", "8", "--max_steps", "15", "--learning_rate", "1e-3",
                   "--kl_coef", "1.0", "--save_steps", "1000")  # fmt: skip
        return out

    def run_grpo(self, out: Path) -> Path:
        import scripts.train_grpo as train_grpo  # in this process: the imports are already paid

        return train_grpo.main(["--model_name_or_path", str(self("sft")), "--reward_funcs", "reward_model",
                                "--reward_model", str(self("rm")), "--data_path",
                                str(self.data["pairs"]), "--output_dir", str(out), "--use_lora", "true",
                                "--lora_target_modules", "all", "--num_generations", "8", "--max_new_tokens", "12",
                                "--batch_size", "16", "--per_device_train_batch_size", "16", "--max_steps", "6",
                                "--learning_rate", "3e-3", "--kl_coef", "0.1", "--save_steps", "1000"])  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_llama, toy_data) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("pipeline"), tiny_llama, toy_data)


def sample_answers(model, tokenizer, n: int = 64) -> torch.Tensor:
    """n sampled responses (prompt + answer rows, no padding inside) to one toy question, fixed seed."""
    from common.templates import encode_generation_prompt, get_template

    prompt = encode_generation_prompt(
        get_template("belle"), tokenizer, [{"role": "user", "content": "2+2=?"}]
    )
    torch.manual_seed(0)
    return model.generate(torch.tensor([prompt] * n), do_sample=True, top_k=0, top_p=1.0, max_new_tokens=12,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip


def mean_reward(reward_model, sequences: torch.Tensor, pad_id: int) -> float:
    with torch.no_grad():
        return (
            torch.stack([reward_model(input_ids=s[s != pad_id][None]).logits[0, 0] for s in sequences])
            .mean()
            .item()
        )


@pytest.mark.parametrize("stage", STAGES)
def test_stage(stage, pipeline):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    out = pipeline(stage)
    if stage == "pt":
        results = read_json(out / "eval_results.json")
        assert results["after_perplexity"] < results["before_perplexity"], results
    elif stage == "sft":
        losses = [e["loss"] for e in read_json(out / "trainer_state.json")["log_history"] if "loss" in e]
        assert losses[-1] < 0.5 < losses[0], losses  # the two toy answers are learnt; only the coin is left
    elif stage == "rm":
        results = read_json(out / "eval_results.json")
        assert results["eval_accuracy"] == 1.0 and results["eval_margin"] > 0, results
    elif stage == "dpo":
        results = read_json(out / "eval_results.json")
        # The margin starts at exactly 0 (the policy is its reference) and must have risen.
        assert results["eval_rewards/margins"] > 0.1 and results["eval_rewards/accuracies"] == 1.0, results
    else:
        if stage == "ppo":
            log = [json.loads(line) for line in (out / "ppo_log.jsonl").read_text().splitlines()]
            kl = [e["objective/kl"] for e in log]
        else:
            log = [json.loads(line) for line in (out / "grpo_log.jsonl").read_text().splitlines()]
            kl = [e["kl"] for e in log]
            assert all("rewards/reward_model/mean" in e for e in log)
        assert abs(kl[0]) < 1e-5
        assert all(abs(k) < 5.0 for k in kl[-5:]), kl
        # Measured here, not from the run's log: samples of the SFT policy and of the trained policy, scored
        # by the reward model.
        sft_dir = pipeline("sft")
        tokenizer = AutoTokenizer.from_pretrained(sft_dir)
        reward_model = AutoModelForSequenceClassification.from_pretrained(pipeline("rm")).eval()
        before = sample_answers(AutoModelForCausalLM.from_pretrained(sft_dir), tokenizer)
        policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft_dir), str(out))
        after = sample_answers(policy, tokenizer)
        r_before = mean_reward(reward_model, before, tokenizer.pad_token_id)
        r_after = mean_reward(reward_model, after, tokenizer.pad_token_id)
        yes_before = sum(CHOSEN in t for t in tokenizer.batch_decode(before, skip_special_tokens=True))
        yes_after = sum(CHOSEN in t for t in tokenizer.batch_decode(after, skip_special_tokens=True))
        print(
            f"{stage}: reward {r_before:.3f} -> {r_after:.3f}, '{CHOSEN}' {yes_before} -> {yes_after} of 64"
        )
        assert r_after > r_before + 1.0, (r_before, r_after)
        assert yes_after > yes_before + 10, (yes_before, yes_after)
