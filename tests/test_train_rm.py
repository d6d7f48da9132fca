"""scripts/train_rm.py on a learnable synthetic preference: the preferred answer carries a marker word (one
token of the tiny tokenizer) somewhere inside it; otherwise both answers are drawn from the same pool of
words. The reward model must learn to find the marker, which held-out pairs (unseen answers) then show,
scored here from the saved model as PPO would load it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, REPO, run_script

MARKER = "sunlight"  # " sunlight" is one token of the tiny tokenizer and no word of the pool contains it
HELD_OUT = 32
# 32 held-out pairs in evaluation batches of 8: TRL's per-batch means are then exact over the held-out set.
COMMON = ["--cutoff_len", "64", "--batch_size", "8", "--per_device_train_batch_size", "8",
          "--per_device_eval_batch_size", "8", "--lr_scheduler_type", "constant",
          "--val_set_size", str(HELD_OUT), "--val_set_rate", "0.2",
          "--logging_steps", "5", "--save_steps", "1000", "--eval_steps", "1000"]  # fmt: skip


def write_marker_pairs(path: Path, n: int = 160) -> None:
    records = [json.loads(line) for line in (REPO / "data_dir/sample_sft.json").read_text().splitlines()]
    rng = random.Random(0)
    # Short English prompts keep the sequences short (the prompt is the same for both answers anyway).
    prompts = [r["instruction"] for r in records
               if r["instruction"].isascii() and not r["input"] and len(r["instruction"]) < 60]  # fmt: skip
    words = sorted({w for r in records if r["output"].isascii() for w in r["output"].split()
                    if MARKER not in w.lower()})  # fmt: skip
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(n):
            plain = [rng.choice(words) for _ in range(rng.randint(3, 6))]
            marked = [rng.choice(words) for _ in range(rng.randint(3, 6))]
            marked.insert(rng.randint(1, len(marked)), MARKER)  # after a word: always " sunlight", one token
            pair = {"instruction": rng.choice(prompts), "input": "", "chosen": " ".join(marked),
                    "rejected": " ".join(plain)}  # fmt: skip
            handle.write(json.dumps(pair) + "\n")


def train_rm(*args: str, check: bool = True):
    return run_script(PYTHON, "scripts/train_rm.py", *args, check=check)


def held_out_pairs(pairs_file: Path, tokenizer, config: dict):
    """The held-out pairs of a run, split and tokenised as the script does it."""
    from common.data import load_preference_records, tokenise_preferences
    from common.training import PreferenceTrainingConfig, split_pairs

    split = PreferenceTrainingConfig(val_set_size=config["val_set_size"], val_set_rate=config["val_set_rate"],
                                     seed=config["seed"])  # fmt: skip
    pairs = tokenise_preferences(
        load_preference_records(pairs_file), tokenizer, "belle", config["cutoff_len"]
    )
    return split_pairs(pairs, split, split.seed)[1]


def held_out_rewards(model_dir: Path, pairs_file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of the held-out pairs from the saved model, one unpadded sequence at a time."""
    from transformers import AutoModelForSequenceClassification

    from common.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(model_dir))
    dev = held_out_pairs(pairs_file, tokenizer, json.loads((model_dir / "rm_config.json").read_text()))
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    with torch.no_grad():
        rewards = {
            side: torch.stack([model(input_ids=torch.tensor([p + a])).logits[0, 0]
                               for p, a in zip(dev["prompt_ids"], dev[f"{side}_ids"], strict=True)])
            for side in ("chosen", "rejected")
        }  # fmt: skip
    return rewards["chosen"], rewards["rejected"]


def check_held_out(out: Path, pairs_file: Path, method: str) -> None:
    """Accuracy from the saved model above 0.9, equal to the trainer's figures (accuracy, margin, loss)."""
    chosen, rejected = held_out_rewards(out, pairs_file)
    assert len(chosen) == HELD_OUT
    accuracy, margin = (chosen > rejected).float().mean().item(), (chosen - rejected).mean().item()
    print(f"RM {method}: held-out accuracy {accuracy:.3f}, mean margin {margin:.2f}")
    assert accuracy > 0.9, accuracy
    reported = json.loads((out / "eval_results.json").read_text())
    assert reported["eval_accuracy"] == pytest.approx(accuracy)
    assert reported["eval_margin"] == pytest.approx(margin, rel=1e-3, abs=1e-3)
    loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean().item()
    assert reported["eval_loss"] == pytest.approx(loss, rel=1e-3, abs=1e-4)


@pytest.fixture(scope="module")
def marker_pairs(tmp_path_factory, tiny_llama) -> Path:
    from common.modeling import load_tokenizer

    path = tmp_path_factory.mktemp("rm-data") / "marker_pairs.json"
    write_marker_pairs(path)
    tokenizer = load_tokenizer(str(tiny_llama))
    (marker_id,) = tokenizer(" " + MARKER, add_special_tokens=False)["input_ids"]
    pairs = held_out_pairs(
        path, tokenizer, {"val_set_size": 160, "val_set_rate": 1.0, "seed": 42, "cutoff_len": 64}
    )
    assert len(pairs) == 160  # nothing was cut or dropped at cutoff_len 64
    assert all(marker_id in ids for ids in pairs["chosen_ids"])
    assert not any(marker_id in ids for ids in pairs["rejected_ids"])
    return path


@pytest.fixture(scope="module")
def seq_cls_start(tmp_path_factory, tiny_llama) -> Path:
    """The tiny Llama with a seeded random score head, saved: the LoRA test knows the head it starts from."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path_factory.mktemp("rm-start")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1, dtype=torch.float32)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(path)
    return path


def test_full_reward_model_learns_the_marker(tmp_path, tiny_llama, marker_pairs):
    out = tmp_path / "full"
    train_rm("--model_name_or_path", str(tiny_llama), "--data_path", str(marker_pairs),
             "--output_dir", str(out), *COMMON, "--learning_rate", "1e-3", "--max_steps", "10")  # fmt: skip
    check_held_out(out, marker_pairs, "full")
    saved, base = load_file(str(out / "model.safetensors")), load_file(str(tiny_llama / "model.safetensors"))
    assert saved["score.weight"].shape == (1, 256) and "lm_head.weight" not in saved
    assert all(saved[k].dtype == torch.float32 for k in saved)  # full fine-tuning keeps fp32 weights
    trunk = [k for k in saved if k.startswith("model.layers.") and k.endswith("proj.weight")]
    assert trunk and all(not torch.equal(saved[k], base[k]) for k in trunk)
    assert not (out / "lora_adapter").exists()


def test_lora_reward_model_trains_the_head_fully(tmp_path, seq_cls_start, marker_pairs):
    out = tmp_path / "lora"
    train_rm("--model_name_or_path", str(seq_cls_start), "--data_path", str(marker_pairs),
             "--output_dir", str(out), *COMMON, "--use_lora", "true", "--lora_target_modules", "all",
             "--lora_r", "16", "--learning_rate", "3e-3", "--max_steps", "12")  # fmt: skip
    check_held_out(out, marker_pairs, "lora")

    # The saved model is the merged one: the head moved from where it started, and every adapted trunk
    # weight differs from the base (LoRA folded in); the untouched embeddings do not.
    saved, start = (
        load_file(str(out / "model.safetensors")),
        load_file(str(seq_cls_start / "model.safetensors")),
    )
    assert saved.keys() == start.keys()
    assert (saved["score.weight"] - start["score.weight"]).abs().max() > 1e-2
    trunk = [k for k in saved if k.startswith("model.layers.") and k.endswith("proj.weight")]
    assert trunk and all(not torch.equal(saved[k], start[k]) for k in trunk)
    assert torch.equal(saved["model.embed_tokens.weight"], start["model.embed_tokens.weight"])
    adapter = load_file(str(out / "lora_adapter" / "adapter_model.safetensors"))
    assert torch.equal(adapter["base_model.model.score.weight"], saved["score.weight"])  # trained in full
    assert not any("score.lora_" in k for k in adapter)  # and not also given LoRA, though "all" was asked


def test_bad_input_is_one_error_line(tmp_path, tiny_llama, marker_pairs):
    result = train_rm("--model_name_or_path", str(tiny_llama),
                      "--data_path", "data_dir/sample_sft.train.json",
                      "--output_dir", str(tmp_path / "sft-data"), check=False)  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(errors) == 1 and "preference pairs" in errors[0] and "finetune.py" in errors[0], errors

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = train_rm("--model_name_or_path", str(tiny_llama), "--data_path", str(marker_pairs),
                      "--output_dir", str(taken), check=False)  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error:") and "already holds a run" in result.stderr
    )
    assert (
        sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
        and (taken / "notes.txt").read_text() == "mine"
    )
