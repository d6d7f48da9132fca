"""scripts/finetune.py end to end on the embedded tiny models, run as a user runs it."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from common.runs import sha256_of
from conftest import PYTHON, REPO, run_script

TRAIN = "data_dir/sample_sft.train.json"
DEV = "data_dir/sample_sft.dev.json"
FAST = ["--val_set_size", "16", "--logging_steps", "2", "--save_steps", "1000", "--eval_steps", "1000",
        "--warmup_steps", "2", "--lr_scheduler_type", "constant"]  # fmt: skip


def finetune(*args: str, check: bool = True, env: dict | None = None):
    return run_script(PYTHON, "scripts/finetune.py", *args, check=check, env=env)


def logged_losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_full_sft_lowers_loss_and_changes_every_parameter(tmp_path, tiny_llama):
    out = tmp_path / "full"
    finetune("--model_name_or_path", str(tiny_llama), "--data_path", TRAIN, "--output_dir", str(out),
             "--max_steps", "24", "--learning_rate", "3e-3", "--batch_size", "8", *FAST)  # fmt: skip
    losses = logged_losses(out)
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses  # half a nat lower at least

    before, after = weights(tiny_llama), weights(out)
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []

    # The run record: the resolved config (with what was resolved at run time) and the manifest.
    resolved = json.loads((out / "finetune_config.json").read_text())
    assert resolved["max_steps"] == 24 and resolved["_resolved"]["precision"] == "fp32"
    assert resolved["_resolved"]["gradient_accumulation_steps"] == 2  # batch_size 8 / 4 per device
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["config"] == resolved
    assert manifest["data_files"][TRAIN] == sha256_of(REPO / TRAIN)
    assert manifest["packages"]["torch"] == metadata.version("torch")
    assert manifest["git"]["commit"] and isinstance(manifest["git"]["dirty"], bool)
    assert (out / "tokenizer_config.json").is_file()


def test_freeze_trains_only_the_last_layers(tmp_path, tiny_llama):
    out = tmp_path / "freeze"
    finetune("--model_name_or_path", str(tiny_llama), "--data_path", TRAIN, "--output_dir", str(out),
             "--max_steps", "6", "--learning_rate", "1e-3", "--trainable_layers", "1", *FAST)  # fmt: skip
    before, after = weights(tiny_llama), weights(out)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    last_block = {name for name in before if name.startswith("model.layers.3.")}
    assert changed == last_block


def test_lora_sft_trains_the_adapter_only(tmp_path, tiny_llama):
    # The random base's frozen head gives near-uniform logits that adapters inside the blocks can barely
    # sharpen in a few steps, so the head is adapted too; the loss then has room to fall.
    out = tmp_path / "lora"
    finetune("--model_name_or_path", str(tiny_llama), "--data_path", TRAIN, "--output_dir", str(out),
             "--max_steps", "24", "--learning_rate", "5e-3", "--batch_size", "8", "--use_lora",
             "--lora_target_modules", "q_proj,v_proj,down_proj,lm_head", *FAST)  # fmt: skip
    losses = logged_losses(out)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.4, losses
    assert not (out / "model.safetensors").exists()  # only the adapter is saved
    adapter = load_file(str(out / "adapter_model.safetensors"))
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    assert len(lora_b) == 4 * 3 + 1  # three projections in each of four layers, and the head
    # LoRA B starts at zero, so a non-zero B in every adapted module means every one of them trained.
    assert all(v.abs().max() > 0 for v in lora_b.values())
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("missing", "data file not found"),
        ("bad_line", "bad.json:2: invalid JSON line"),
        ("no_output", "bad.json:1: 'output' is missing"),
        ("unknown_key", "unknown key 'learning_rat'"),
    ],
)
def test_bad_input_stops_with_one_clear_message(tmp_path, tiny_llama, setup, fragment):
    data = tmp_path / "bad.json"
    args = [
        "--model_name_or_path",
        str(tiny_llama),
        "--data_path",
        str(data),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    if setup == "bad_line":
        data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n')
    elif setup == "no_output":
        data.write_text('{"instruction": "a", "input": ""}\n')
    elif setup == "unknown_key":
        config = tmp_path / "c.json"
        config.write_text('{"learning_rat": 0.1}')
        args += ["--model_config_file", str(config)]
    result = finetune(*args, check=False)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


# ---- BELLE's command lines, on the tiny configs --------------------------------------------------


@pytest.fixture(scope="module")
def belle_runs(tmp_path_factory, tiny_models):
    """BELLE's README commands with run_config/ -> run_config/tiny/, a few steps each."""
    root = tmp_path_factory.mktemp("belle")
    short = ["--max_steps", "4", "--save_steps", "4"]
    runs = {
        "deepspeed_full": ["deepspeed", "--num_gpus=1", "scripts/finetune.py",
                           "--model_config_file", "run_config/tiny/Bloom_config.json",
                           "--deepspeed", "run_config/tiny/deepspeed_config.json"],
        "deepspeed_lora": ["deepspeed", "--num_gpus=1", "scripts/finetune.py",
                           "--model_config_file", "run_config/tiny/Bloom_config.json",
                           "--lora_hyperparams_file", "run_config/tiny/lora_hyperparams_bloom.json", "--use_lora",
                           "--deepspeed", "run_config/tiny/deepspeed_config.json"],
        "torchrun_lora": ["torchrun", "--nproc_per_node=2", "scripts/finetune.py",
                          "--model_config_file", "run_config/tiny/Llama_config.json",
                          "--lora_hyperparams_file", "run_config/tiny/lora_hyperparams_llama.json", "--use_lora"],
    }  # fmt: skip
    bin_dir = Path(PYTHON).parent
    for name, command in runs.items():
        command[0] = str(bin_dir / command[0])
        run_script(*command, *short, "--output_dir", str(root / name), timeout=900)
    return root


def test_deepspeed_launcher_full_and_lora(belle_runs):
    for name, saved in (
        ("deepspeed_full", "model.safetensors"),
        ("deepspeed_lora", "adapter_model.safetensors"),
    ):
        out = belle_runs / name
        assert (out / saved).is_file() and (out / "checkpoint-4" / "trainer_state.json").is_file()
        config = json.loads((out / "finetune_config.json").read_text())
        assert config["deepspeed"] == "run_config/tiny/deepspeed_config.json"
        assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def test_deepspeed_resume_never_unpickles_an_engine_file(belle_runs, tmp_path):
    """DeepSpeed reads its own engine files (global_stepN/*.pt) with full unpickling; during our runs its
    loader is weights-only. A pickle planted there, even with the manifest rewritten to match, is refused
    as one error line and never runs."""
    import pickle
    import shutil
    import socket

    from common import runs

    out, marker = tmp_path / "run", tmp_path / "pwned"
    shutil.copytree(belle_runs / "deepspeed_lora", out)
    checkpoint = out / "checkpoint-4"
    engine_file = next(checkpoint.glob("global_step*/mp_rank_00_model_states.pt"))

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    engine_file.write_bytes(pickle.dumps(Planted()))
    manifest = runs.read_checkpoint_manifest(checkpoint)
    runs.write_checkpoint_manifest(checkpoint, manifest["run_id"], manifest["global_step"])
    with socket.socket() as sock:  # a port of its own: another file's launcher run may hold 29500
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    result = run_script(str(Path(PYTHON).parent / "deepspeed"), "--num_gpus=1", "--master_port", port,
                        "scripts/finetune.py",
                        "--model_config_file", "run_config/tiny/Bloom_config.json",
                        "--lora_hyperparams_file", "run_config/tiny/lora_hyperparams_bloom.json", "--use_lora",
                        "--deepspeed", "run_config/tiny/deepspeed_config.json", "--max_steps", "5",
                        "--save_steps", "4", "--output_dir", str(out), "--resume_from_checkpoint", "true",
                        check=False, timeout=600)  # fmt: skip
    assert result.returncode != 0 and not marker.exists()
    assert f"error: refusing to load {engine_file}: not a plain tensor/state file" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_torchrun_two_processes(belle_runs):
    out = belle_runs / "torchrun_lora"
    config = json.loads((out / "finetune_config.json").read_text())
    assert config["_resolved"]["world_size"] == 2
    assert config["_resolved"]["gradient_accumulation_steps"] == 1  # batch 8 = 4 per device x 2 processes
    assert (out / "adapter_model.safetensors").is_file()


def test_generate_after_belle_runs(belle_runs, tiny_models, tmp_path):
    """python scripts/generate.py --dev_file ... --model_name_or_path ... [--lora_weights ...]"""
    dev_lines = sum(1 for line in (REPO / DEV).read_text().splitlines() if line.strip())
    full_out, lora_out = tmp_path / "full.jsonl", tmp_path / "lora.jsonl"
    run_script(PYTHON, "scripts/generate.py", "--dev_file", DEV,
               "--model_name_or_path", str(belle_runs / "deepspeed_full"),
               "--max_new_tokens", "8", "--output_file", str(full_out))  # fmt: skip
    run_script(PYTHON, "scripts/generate.py", "--dev_file", DEV, "--llama",
               "--model_name_or_path", str(tiny_models / "tiny-llama"),
               "--lora_weights", str(belle_runs / "torchrun_lora"),
               "--max_new_tokens", "8", "--output_file", str(lora_out))  # fmt: skip
    for path in (full_out, lora_out):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == dev_lines
        assert all(set(row) == {"input", "predict", "target"} for row in rows)
