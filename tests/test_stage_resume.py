"""Pre-training, reward modelling and DPO share finetune.py's run folder (common/runs.py): a damaged newest
checkpoint is skipped with a line saying why, and the resume from the one before ends with exactly the weights
of the uninterrupted run. (finetune.py, with SIGTERM and overwrite: tests/test_run_folder.py; PPO's own loop:
tests/test_train_ppo.py.) A run killed outright (SIGKILL) leaves the same kind of folder as here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, run_script

STEPS = ["--max_steps", "3", "--save_steps", "1", "--save_total_limit", "null", "--logging_steps", "1",
         "--seed", "7"]  # fmt: skip


def stage_args(stage: str, model: Path, out: Path) -> list[str]:
    """Full fine-tuning of the tiny Llama for 3 steps, a checkpoint after each."""
    common = ["--model_name_or_path", str(model), "--output_dir", str(out), *STEPS]
    if stage == "pretrain":
        return ["scripts/pretrain.py", *common, "--block_size", "32", "--per_device_train_batch_size", "2",
                "--batch_size", "2", "--eval_before_training", "false", "--max_eval_blocks", "2",
                "--data_cache_dir", "null"]  # fmt: skip
    script = {"rm": "scripts/train_rm.py", "dpo": "scripts/train_dpo.py"}[stage]
    return [script, *common, "--val_set_size", "0", "--batch_size", "2", "--per_device_train_batch_size", "2",
            "--cutoff_len", "64", "--learning_rate", "1e-4"]  # fmt: skip


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert [name for name in a if not torch.equal(a[name], b[name])] == []


@pytest.mark.parametrize("stage", ["pretrain", "rm", "dpo"])
def test_damaged_checkpoints_are_skipped_and_the_resume_equals_the_uninterrupted_run(
    tmp_path, tiny_llama, stage
):
    straight = tmp_path / "straight"
    run_script(PYTHON, *stage_args(stage, tiny_llama, straight))

    # The run "died" after writing checkpoint-3 badly and checkpoint-2 partly: only the checkpoints and
    # the run record survive; checkpoint-3 lacks its optimizer state, checkpoint-2's weights are cut short.
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for leftover in ("model.safetensors", "train_results.json", "all_results.json", "trainer_state.json"):
        (resumed / leftover).unlink(missing_ok=True)
    (resumed / "checkpoint-3" / "optimizer.pt").unlink()
    weights = resumed / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])

    result = run_script(PYTHON, *stage_args(stage, tiny_llama, resumed), "--resume_from_checkpoint", "true")
    assert f"skipping {resumed / 'checkpoint-3'}: optimizer.pt missing" in result.stderr
    assert f"skipping {resumed / 'checkpoint-2'}: model.safetensors size 1000 !=" in result.stderr
    assert f"resuming from {resumed / 'checkpoint-1'}" in result.stderr
    assert_bitwise_equal(final_weights(resumed), final_weights(straight))
