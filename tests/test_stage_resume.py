"""Pre-training, reward modelling and DPO share finetune.py's run folder (common/runs.py): SIGTERM mid-run
finishes the step, saves a complete checkpoint and exits 143; SIGKILL stops the run wherever it is; a damaged
newest checkpoint is skipped with a line saying why; in every case the resume ends with exactly the weights
of the uninterrupted run. (finetune.py, with overwrite: tests/test_run_folder.py; PPO's own loop:
tests/test_train_ppo.py.)"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, kill_when, run_script, signal_when

STAGES = ["pretrain", "rm", "dpo"]
STEPS = ["--max_steps", "4", "--save_steps", "1", "--save_total_limit", "null", "--logging_steps", "1",
         "--seed", "7"]  # fmt: skip


def stage_args(stage: str, model: Path, out: Path) -> list[str]:
    """Full fine-tuning of the tiny Llama for 4 steps, a checkpoint after each."""
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


@pytest.fixture(scope="module", params=STAGES)
def straight(request, tmp_path_factory, tiny_llama) -> tuple[str, Path]:
    """(stage, folder of its uninterrupted run): what every interrupted run of the stage must end equal to."""
    out = tmp_path_factory.mktemp(request.param) / "straight"
    run_script(PYTHON, *stage_args(request.param, tiny_llama, out))
    return request.param, out


def test_damaged_checkpoints_are_skipped_and_the_resume_equals_the_uninterrupted_run(
    tmp_path, tiny_llama, straight
):
    stage, reference = straight
    # The run "died" after writing checkpoint-4 badly and checkpoint-3 partly: only the checkpoints and
    # the run record survive; checkpoint-4 lacks its optimizer state, checkpoint-3's weights are cut short.
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for leftover in ("model.safetensors", "train_results.json", "all_results.json", "trainer_state.json"):
        (resumed / leftover).unlink(missing_ok=True)
    (resumed / "checkpoint-4" / "optimizer.pt").unlink()
    weights = resumed / "checkpoint-3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])

    result = run_script(PYTHON, *stage_args(stage, tiny_llama, resumed), "--resume_from_checkpoint", "true")
    assert f"skipping {resumed / 'checkpoint-4'}: optimizer.pt missing" in result.stderr
    assert f"skipping {resumed / 'checkpoint-3'}: model.safetensors size 1000 !=" in result.stderr
    assert f"resuming from {resumed / 'checkpoint-2'}" in result.stderr
    assert_bitwise_equal(final_weights(resumed), final_weights(reference))


def test_sigterm_saves_a_checkpoint_and_the_resume_equals_the_uninterrupted_run(
    tmp_path, tiny_llama, straight
):
    stage, reference = straight
    out = tmp_path / "run"
    first_checkpoint = out / "checkpoint-1" / "checkpoint_manifest.json"
    code, stderr = signal_when([PYTHON, *stage_args(stage, tiny_llama, out)], first_checkpoint.is_file,
                               signal.SIGTERM)  # fmt: skip
    assert code == 143, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    step = int(last_line.split("after step ")[1].split(";")[0])
    assert 1 <= step < 4 and "Traceback" not in stderr, stderr[-3000:]
    assert f"checkpoint saved in {out / f'checkpoint-{step}'}" in last_line
    assert not (out / "model.safetensors").exists()  # stopped: no final save

    result = run_script(PYTHON, *stage_args(stage, tiny_llama, out), "--resume_from_checkpoint", "true")
    assert f"resuming from {out / f'checkpoint-{step}'}" in result.stderr
    assert_bitwise_equal(final_weights(out), final_weights(reference))


def test_sigkill_mid_run_and_the_resume_equals_the_uninterrupted_run(tmp_path, tiny_llama, straight):
    stage, reference = straight
    out = tmp_path / "run"
    command = [PYTHON, *stage_args(stage, tiny_llama, out)]
    assert kill_when(command, out / "checkpoint-2" / "checkpoint_manifest.json") == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()  # killed before the end

    result = run_script(*command, "--resume_from_checkpoint", "true")
    resumed_at = int(result.stderr.split(f"resuming from {out / 'checkpoint-'}")[1].split()[0])
    assert resumed_at >= 2  # checkpoint-2, or a later one the run finished saving before the kill landed
    assert_bitwise_equal(final_weights(out), final_weights(reference))

