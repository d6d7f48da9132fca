"""scripts/train_rm.py on a learnable synthetic preference: the preferred answer carries a marker word
somewhere inside it; both answers come from the same pool of texts otherwise. The reward model must
learn to find the marker, which held-out pairs (unseen prompts and answers) then show."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, REPO, run_script

MARKER = "Kiwi"


def write_marker_pairs(path: Path, n: int = 160) -> None:
    records = [json.loads(line) for line in (REPO / "data_dir/sample_sft.json").read_text().splitlines()]
    rng = random.Random(0)
    words = " ".join(r["output"] for r in records if r["output"].isascii()).split()
    with open(path, "w", encoding="utf-8") as handle:
        for record in rng.sample(records, n):
            plain = [rng.choice(words) for _ in range(rng.randint(4, 10))]
            marked = [rng.choice(words) for _ in range(rng.randint(4, 10))]
            marked.insert(rng.randint(0, len(marked)), MARKER)
            pair = {"instruction": record["instruction"], "input": "", "chosen": " ".join(marked),
                    "rejected": " ".join(plain)}  # fmt: skip
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")


def train_rm(*args: str, check: bool = True):
    return run_script(PYTHON, "scripts/train_rm.py", *args, check=check)


def held_out_rewards(model_dir: Path, pairs_file: Path, config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of the held-out pairs, computed here from the saved model, one sequence at a time."""
    from transformers import AutoModelForSequenceClassification

    from common.data import load_preference_records, tokenise_preferences
    from common.modeling import load_tokenizer
    from common.training import PreferenceTrainingConfig, split_pairs

    split = PreferenceTrainingConfig(val_set_size=config["val_set_size"], val_set_rate=config["val_set_rate"],
                                     seed=config["seed"])  # fmt: skip
    tokenizer = load_tokenizer(str(model_dir))
    pairs = tokenise_preferences(
        load_preference_records(pairs_file), tokenizer, "belle", config["cutoff_len"]
    )
    _, dev = split_pairs(pairs, split)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        score = lambda ids: model(input_ids=torch.tensor([ids])).logits[0, 0]  # noqa: E731
        chosen = torch.stack(
            [score(p + c) for p, c in zip(dev["prompt_ids"], dev["chosen_ids"], strict=True)]
        )
        rejected = torch.stack(
            [score(p + r) for p, r in zip(dev["prompt_ids"], dev["rejected_ids"], strict=True)]
        )
    return chosen, rejected


@pytest.fixture(scope="module")
def marker_pairs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rm-data") / "marker_pairs.json"
    write_marker_pairs(path)
    return path


COMMON = ["--cutoff_len", "96", "--batch_size", "16", "--per_device_train_batch_size", "16",
          "--lr_scheduler_type", "constant", "--val_set_size", "32", "--val_set_rate", "0.2",
          "--logging_steps", "10", "--save_steps", "1000", "--eval_steps", "1000"]  # fmt: skip


@pytest.mark.parametrize("method", ["full", "lora"])
def test_reward_model_learns_the_marker(tmp_path, tiny_llama, marker_pairs, method):
    out = tmp_path / method
    extra = ["--learning_rate", "1e-3", "--max_steps", "40"] if method == "full" else \
        ["--use_lora", "true", "--lora_target_modules", "all", "--lora_r", "16", "--learning_rate", "3e-3",
         "--max_steps", "60"]  # fmt: skip
    train_rm("--model_name_or_path", str(tiny_llama), "--data_path", str(marker_pairs), "--output_dir", str(out),
             *COMMON, *extra)  # fmt: skip

    config = json.loads((out / "rm_config.json").read_text())
    chosen, rejected = held_out_rewards(out, marker_pairs, config)
    assert len(chosen) == 32
    accuracy = (chosen > rejected).float().mean().item()
    print(f"RM {method}: held-out accuracy {accuracy:.3f}, mean margin {(chosen - rejected).mean().item():.2f}")
    assert accuracy > 0.9, accuracy
    reported = json.loads((out / "eval_results.json").read_text())
    assert reported["eval_accuracy"] == pytest.approx(accuracy)  # the trainer's figure is the real one
    assert reported["eval_margin"] == pytest.approx((chosen - rejected).mean().item(), rel=1e-3, abs=1e-3)

    # Saved for PPO: a plain sequence-classification model whose head and trunk both learned.
    saved, base = load_file(str(out / "model.safetensors")), load_file(str(tiny_llama / "model.safetensors"))
    assert saved["score.weight"].shape == (1, 256) and "lm_head.weight" not in saved
    trunk = [k for k in saved if k.startswith("model.layers.") and k.endswith("proj.weight")]
    assert trunk and all(not torch.equal(saved[k], base[k]) for k in trunk)
    if method == "lora":
        adapter = load_file(str(out / "lora_adapter" / "adapter_model.safetensors"))
        assert "base_model.model.score.weight" in adapter  # the head trained in full (modules_to_save)
        assert not any("score.lora_" in k for k in adapter)  # and was not also given LoRA


def test_bad_input_is_one_line(tmp_path, tiny_llama, marker_pairs):
    result = train_rm("--model_name_or_path", str(tiny_llama), "--data_path", "data_dir/sample_sft.train.json",
                      "--output_dir", str(tmp_path / "sft-data"), check=False)  # fmt: skip
    assert result.returncode != 0 and "preference pairs" in result.stderr and "Traceback" not in result.stderr

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = train_rm("--model_name_or_path", str(tiny_llama), "--data_path", str(marker_pairs),
                      "--output_dir", str(taken), check=False)  # fmt: skip
    assert result.returncode != 0 and "already holds a run" in result.stderr
    assert (taken / "notes.txt").read_text() == "mine"
