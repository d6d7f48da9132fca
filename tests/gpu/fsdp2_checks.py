"""FSDP2 (torch's fully_shard through accelerate and the Trainer) on two GPUs, against the same run in one
process. accelerate 1.15 turns FSDP on only for GPU process groups, so these cannot run in the CPU suite (not
named test_*: only an explicit path collects them). Run on the device machine `nvidia-h200-x2`:

    OUT=$OUT bash tests/gpu/run_fsdp2.sh

fp32 weights and compute (--precision fp32, TF32 off) and lr 1e-4, as in tests/test_sharded.py's ZeRO-3
comparisons, so that one step's reduction order shows far inside the 1e-5 tolerance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_sharded import SFT, TOLERANCE, assert_same_tensors, continued, free_port, step_logs  # noqa: E402

from conftest import PYTHON, run_script  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP2 through accelerate needs 2 GPUs")

FSDP2 = "run_config/tiny/fsdp2.json"
FP32 = {"NVIDIA_TF32_OVERRIDE": "0"}
ON_GPU_SFT = [*SFT, "--precision", "fp32"]
# Full DPO/KTO under FSDP2 are refused before torch 2.13 (PolicyPreferenceConfig.check); the GPU image had 2.11.
NEEDS_TORCH_2_13 = pytest.mark.skipif(tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 13),
                                      reason="full DPO/KTO under FSDP2 need torch >= 2.13")


def processes(count: int, script: str, *args: str):
    return run_script(PYTHON, "-m", "torch.distributed.run", f"--nproc_per_node={count}", "--master_port",
                      free_port(), script, *args, env=FP32, timeout=600)  # fmt: skip


def one_gpu(script: str, *args: str):
    return run_script(PYTHON, script, *args, env={**FP32, "CUDA_VISIBLE_DEVICES": "0"}, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_models) -> Path:
    """One process without FSDP (3 steps), two under FSDP2 (1 step), then resumed 2 -> 1 and 1 -> 2."""
    root = tmp_path_factory.mktemp("fsdp2")
    model = ["--model_name_or_path", str(tiny_models / "tiny-llama")]
    one_gpu("scripts/finetune.py", *model, *ON_GPU_SFT, "--max_steps", "3", "--output_dir", str(root / "sft"))
    sharded = processes(2, "scripts/finetune.py", *model, *ON_GPU_SFT, "--max_steps", "1", "--fsdp_config", FSDP2,
                        "--output_dir", str(root / "sft_fsdp2"))  # fmt: skip
    (root / "sft_fsdp2.log").write_text(sharded.stderr)
    resume = ["--resume_from_checkpoint", "true", "--max_steps", "3", "--fsdp_config", FSDP2]
    two_to_one = continued(root / "sft_fsdp2", 1, root / "fsdp2_2to1")
    processes(1, "scripts/finetune.py", *model, *ON_GPU_SFT, *resume, "--output_dir", str(two_to_one))
    processes(2, "scripts/finetune.py", *model, *ON_GPU_SFT, *resume,
              "--output_dir", str(continued(two_to_one, 2, root / "fsdp2_1to2")))  # fmt: skip
    lora = ["--use_lora", "--lora_dropout", "0", "--max_steps", "1"]
    one_gpu("scripts/finetune.py", *model, *ON_GPU_SFT, *lora, "--output_dir", str(root / "lora"))
    processes(2, "scripts/finetune.py", *model, *ON_GPU_SFT, *lora, "--fsdp_config", FSDP2,
              "--output_dir", str(root / "lora_fsdp2"))  # fmt: skip
    return root


def test_fsdp2_sft_step_equals_the_single_process_step(runs):
    single, sharded = step_logs(runs / "sft")[0], step_logs(runs / "sft_fsdp2")[0]
    assert sharded["loss"] == pytest.approx(single["loss"], abs=TOLERANCE)
    assert sharded["grad_norm"] == pytest.approx(single["grad_norm"], rel=1e-4)
    before = load_file(str(runs / "sft" / "checkpoint-1" / "model.safetensors"))
    assert_same_tensors(before, load_file(str(runs / "sft_fsdp2" / "model.safetensors")))  # gathered whole
    checkpoint = runs / "sft_fsdp2" / "checkpoint-1"
    assert list(checkpoint.glob("pytorch_model_fsdp_0/*.distcp")), sorted(p.name for p in checkpoint.iterdir())
    config = json.loads((runs / "sft_fsdp2" / "finetune_config.json").read_text())
    assert config["_resolved"]["world_size"] == 2 and config["fsdp_config"] == FSDP2


def test_fsdp2_resumes_on_another_number_of_gpus(runs):
    """Saved on 2 GPUs, resumed on 1 (FSDP2 in one process), then on 2 again: torch's distributed checkpoint
    reshards, and the losses are the uninterrupted run's."""
    uninterrupted = [entry["loss"] for entry in step_logs(runs / "sft")]
    for folder, resumed_at in (("fsdp2_2to1", 1), ("fsdp2_1to2", 2)):
        logged = {entry["step"]: entry["loss"] for entry in step_logs(runs / folder)}
        assert sorted(logged) == [1, 2, 3], folder
        for step, loss in logged.items():
            assert loss == pytest.approx(uninterrupted[step - 1], abs=TOLERANCE), (folder, step)
        manifest = json.loads((runs / folder / "run_manifest.json").read_text())
        assert manifest["resumed_from"].endswith(f"checkpoint-{resumed_at}"), folder
    final = load_file(str(runs / "sft" / "model.safetensors"))
    assert_same_tensors(final, load_file(str(runs / "fsdp2_1to2" / "model.safetensors")))


def test_fsdp2_lora_saves_the_single_process_adapter(runs):
    single = load_file(str(runs / "lora" / "adapter_model.safetensors"))
    sharded = load_file(str(runs / "lora_fsdp2" / "adapter_model.safetensors"))
    assert any("lora_B" in name for name in sharded)
    assert_same_tensors(single, sharded)
    assert all(t.abs().max() > 0 for name, t in sharded.items() if "lora_B" in name)


@pytest.mark.parametrize(("script", "args", "saved"), [
    ("scripts/pretrain.py", ["--model_config_file", "run_config/tiny/pt_config.json", "--max_steps", "2",
                             "--eval_before_training", "false", "--max_eval_blocks", "4"],
     "pt_lora_model/adapter_model.safetensors"),
    ("scripts/train_rm.py", ["--model_config_file", "run_config/tiny/rm_config.json", "--use_lora", "--max_steps", "2",
                             "--val_set_size", "8"], "model.safetensors"),
    ("scripts/train_rm.py", ["--model_config_file", "run_config/tiny/rm_config.json", "--use_lora", "false",
                             "--max_steps", "2", "--val_set_size", "8"], "model.safetensors"),
    ("scripts/train_dpo.py", ["--model_config_file", "run_config/tiny/dpo_config.json", "--max_steps", "2",
                              "--val_set_size", "8"], "adapter_model.safetensors"),
    pytest.param("scripts/train_dpo.py", ["--model_config_file", "run_config/tiny/dpo_config.json", "--use_lora",
                                          "false", "--max_steps", "2", "--val_set_size", "8"], "model.safetensors",
                 marks=NEEDS_TORCH_2_13),
    pytest.param("scripts/train_kto.py", ["--model_config_file", "run_config/tiny/kto_config.json", "--use_lora",
                                          "false", "--max_steps", "2", "--val_set_size", "8"], "model.safetensors",
                 marks=NEEDS_TORCH_2_13),
    ("scripts/finetune.py", ["--data_path", "data_dir/sample_sft.train.json", "--use_lora", "--quantization_bit", "4",
                             "--max_steps", "2", "--val_set_size", "0"], "adapter_model.safetensors"),
], ids=["pretrain_lora", "rm_lora", "rm_full", "dpo_lora", "dpo_full", "kto_full", "sft_qlora"])  # fmt: skip
def test_fsdp2_stage_trains_and_saves(tmp_path, tiny_llama, script, args, saved):
    """Each Trainer stage under FSDP2 on 2 GPUs: it trains (finite losses), and what it saves is whole (every
    tensor non-empty) and moved from where it started. (Full DPO and KTO trained here on torch 2.11 but failed in
    their evaluation after training; they need torch >= 2.13 under FSDP2, see PolicyPreferenceConfig.check.)"""
    out = tmp_path / "out"
    processes(2, script, "--model_name_or_path", str(tiny_llama), *args, "--per_device_train_batch_size", "4",
              "--learning_rate", "1e-4", "--logging_steps", "1", "--fsdp_config", FSDP2, "--output_dir", str(out))  # fmt: skip
    logged = step_logs(out)
    assert logged and all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logged)
    tensors = load_file(str(out / saved))
    assert tensors and all(t.numel() > 0 for t in tensors.values())
    if "adapter" in saved:
        assert all(t.abs().max() > 0 for name, t in tensors.items() if "lora_B" in name)
    else:
        before = load_file(str(tiny_llama / "model.safetensors"))
        moved = [name for name in before if name in tensors and not torch.equal(before[name], tensors[name])]
        assert len(moved) > len(before) // 2, moved
