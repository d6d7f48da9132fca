"""Sharded training on CPU: DeepSpeed ZeRO-3 (its CPU accelerator, gloo) and FSDP2 (torch's fully_shard over
gloo, accelerate's GPU-only gate lifted by tests/fsdp_on_cpu.py), two processes under torchrun, against the same
run in one process.

Why lr 1e-4 in the step comparisons: Adam's first step moves each weight by lr * g / (|g| + eps), so a
gradient element near eps (1e-8) turns a rounding-size difference in its reduction order into a visible
share of lr. At lr 1e-3 a handful of the tiny Llama's 5 M weights differ by ~1.3e-5 between ZeRO-3 and
one process (and by 1.1e-5 between one process with 8-row and with 2 x 4-row micro-batches, nothing
distributed at all); at 1e-4 the largest difference is ~1e-6, ten times inside the 1e-5 tolerance.
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, run_script

TORCHRUN = str(Path(PYTHON).parent / "torchrun")
ZERO3 = "run_config/tiny/deepspeed_zero3.json"
FSDP2 = "run_config/tiny/fsdp2.json"
TOLERANCE = 1e-5
# One optimizer step of 8 rows: 2 x 4 per process, or 4 x 2 accumulated in one process (same micro-batches).
SFT = ["--data_path", "data_dir/sample_sft.train.json", "--batch_size", "8", "--per_device_train_batch_size", "4",
       "--val_set_size", "0", "--learning_rate", "1e-4", "--warmup_steps", "0", "--lr_scheduler_type", "constant",
       "--logging_steps", "1", "--save_steps", "1"]  # fmt: skip
PRETRAIN = ["--model_config_file", "run_config/tiny/pt_config.json", "--max_steps", "1", "--save_steps", "1",
            "--logging_steps", "1", "--learning_rate", "1e-4", "--lora_dropout", "0", "--warmup_steps", "0",
            "--lr_scheduler_type", "constant", "--eval_before_training", "false", "--max_eval_blocks", "4"]  # fmt: skip
REWARD = ["--model_config_file", "run_config/tiny/rm_config.json", "--per_device_train_batch_size", "4",
          "--max_steps", "1", "--val_set_size", "8", "--per_device_eval_batch_size", "4", "--use_lora",
          "--lora_dropout", "0", "--learning_rate", "1e-4"]  # fmt: skip


def free_port() -> str:
    """A rendezvous port of its own: another file's launcher run may hold torchrun's default 29500."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def one_process(script: str, *args: str) -> None:
    run_script(PYTHON, script, *args, timeout=300)


def two_processes(script: str, *args: str) -> subprocess.CompletedProcess:
    return run_script(TORCHRUN, "--nproc_per_node=2", "--master_port", free_port(), script, *args, timeout=300)


def fsdp_on_cpu(processes: int, *args: str, script: str = "scripts/finetune.py") -> subprocess.CompletedProcess:
    """A stage under torchrun with FSDP2 on gloo: accelerate 1.15 keeps FSDP for GPUs only, and
    tests/fsdp_on_cpu.py lifts that gate alone (torch's fully_shard runs on CPU)."""
    return run_script(TORCHRUN, f"--nproc_per_node={processes}", "--master_port", free_port(), "tests/fsdp_on_cpu.py",
                      script, *args, timeout=300)  # fmt: skip


def step_logs(output_dir: Path) -> list[dict]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "loss" in entry]


def assert_same_tensors(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert actual[name].shape == tensor.shape and actual[name].numel() > 0, name
        assert torch.allclose(actual[name].float(), tensor.float(), rtol=0, atol=TOLERANCE), name


def continued(source: Path, step: int, target: Path) -> Path:
    """A new run folder holding `source`'s run id and its checkpoint-`step` only, to resume from there."""
    import shutil

    target.mkdir()
    shutil.copy(source / "run_id.json", target)
    shutil.copytree(source / f"checkpoint-{step}", target / f"checkpoint-{step}")
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_models) -> Path:
    """Each run once for the whole file: one process, two under ZeRO-3, and the resumes on the other count.
    (Plain DDP resumed on another count: the streaming test below.)"""
    root = tmp_path_factory.mktemp("sharded")
    model = ["--model_name_or_path", str(tiny_models / "tiny-llama")]
    one_process("scripts/finetune.py", *model, *SFT, "--max_steps", "3", "--output_dir", str(root / "sft"))
    sharded = two_processes("scripts/finetune.py", *model, *SFT, "--max_steps", "1", "--deepspeed", ZERO3,
                            "--output_dir", str(root / "sft_zero3"))  # fmt: skip
    (root / "sft_zero3.log").write_text(sharded.stderr)
    # ZeRO-3, 2 -> 1: step 1 saved by two processes, steps 2-3 on one (DeepSpeed under torchrun, one process).
    resume = ["--resume_from_checkpoint", "true", "--max_steps", "3", "--deepspeed", ZERO3]
    two_to_one = continued(root / "sft_zero3", 1, root / "zero3_2to1")
    run_script(TORCHRUN, "--nproc_per_node=1", "--master_port", free_port(), "scripts/finetune.py", *model, *SFT,
               *resume, "--output_dir", str(two_to_one), timeout=300)  # fmt: skip
    # ZeRO-3, 1 -> 2: step 2 as saved by that one process, step 3 on two.
    two_processes("scripts/finetune.py", *model, *SFT, *resume,
                  "--output_dir", str(continued(two_to_one, 2, root / "zero3_1to2")))  # fmt: skip
    # FSDP2 (tests/fsdp_on_cpu.py keeps accelerate's FSDP on gloo): one step on two processes, then 2 -> 1 -> 2.
    fsdp2 = ["--fsdp_config", FSDP2]
    fsdp_on_cpu(2, *model, *SFT, "--max_steps", "1", *fsdp2, "--output_dir", str(root / "sft_fsdp2"))
    resume = ["--resume_from_checkpoint", "true", "--max_steps", "3", *fsdp2]
    two_to_one = continued(root / "sft_fsdp2", 1, root / "fsdp2_2to1")
    fsdp_on_cpu(1, *model, *SFT, *resume, "--output_dir", str(two_to_one))
    fsdp_on_cpu(2, *model, *SFT, *resume, "--output_dir", str(continued(two_to_one, 2, root / "fsdp2_1to2")))
    one_process("scripts/pretrain.py", *PRETRAIN, "--output_dir", str(root / "pt"))
    pretrain = two_processes("scripts/pretrain.py", *PRETRAIN, "--deepspeed", ZERO3, "--output_dir", str(root / "pt_zero3"))
    (root / "pt_zero3.log").write_text(pretrain.stderr)
    reward = two_processes("scripts/train_rm.py", *REWARD, "--deepspeed", ZERO3, "--output_dir", str(root / "rm_zero3"))
    (root / "rm_zero3.log").write_text(reward.stderr)
    return root


def held_of_whole(log: str) -> tuple[int, int]:
    """What the log's ZeRO-3 loading line says one process held, of the model's whole size."""
    found = re.search(r"ZeRO-3: weights sharded as they loaded; this process holds ([\d,]+) of ([\d,]+) values", log)
    assert found, "the model did not load into ZeRO-3 shards"
    held, whole = (int(number.replace(",", "")) for number in found.groups())
    return held, whole


def test_zero3_sft_step_equals_the_single_process_step(runs):
    """Full fine-tuning: the loss of the step and the weights after it (gathered whole at the save, as
    stage3_gather_16bit_weights_on_model_save asks) equal one process's."""
    single, sharded = step_logs(runs / "sft")[0], step_logs(runs / "sft_zero3")[0]
    assert sharded["loss"] == pytest.approx(single["loss"], abs=TOLERANCE)
    # Measured 1.4e-5 apart, relatively: DeepSpeed adds up the norm over its partitions, in its own order.
    assert sharded["grad_norm"] == pytest.approx(single["grad_norm"], rel=1e-4)
    before = load_file(str(runs / "sft" / "checkpoint-1" / "model.safetensors"))
    for folder in (runs / "sft_zero3" / "checkpoint-1", runs / "sft_zero3"):  # the checkpoint and the result
        assert_same_tensors(before, load_file(str(folder / "model.safetensors")))
    config = json.loads((runs / "sft_zero3" / "finetune_config.json").read_text())
    assert config["_resolved"]["world_size"] == 2 and config["deepspeed"] == ZERO3
    # The weights went straight into their shards as they loaded (deepspeed.zero.Init): no process held the
    # whole model, each about half of it.
    held, whole = held_of_whole((runs / "sft_zero3.log").read_text())
    assert whole == sum(t.numel() for t in before.values()) and 0.45 * whole < held < 0.55 * whole
    # torch's deprecation of the collectives DeepSpeed calls is silenced (it came back on every call).
    assert "all_gather_into_tensor` is deprecated" not in (runs / "sft_zero3.log").read_text()
    assert len(list((runs / "sft_zero3" / "checkpoint-1").glob("global_step1/zero_pp_rank_*_optim_states.pt"))) == 2


def test_fsdp2_sft_step_equals_the_single_process_step(runs):
    """The same step under FSDP2 (torch's fully_shard through accelerate, on gloo): loss, and the weights the
    finished run gathers whole, equal one process's; the checkpoint holds each process's shard (torch distributed
    checkpoint). On two GPUs: tests/gpu/fsdp2_checks.py."""
    single, sharded = step_logs(runs / "sft")[0], step_logs(runs / "sft_fsdp2")[0]
    assert sharded["loss"] == pytest.approx(single["loss"], abs=TOLERANCE)
    assert sharded["grad_norm"] == pytest.approx(single["grad_norm"], rel=1e-4)
    before = load_file(str(runs / "sft" / "checkpoint-1" / "model.safetensors"))
    assert_same_tensors(before, load_file(str(runs / "sft_fsdp2" / "model.safetensors")))
    assert len(list((runs / "sft_fsdp2" / "checkpoint-1").glob("pytorch_model_fsdp_0/*.distcp"))) == 2
    assert json.loads((runs / "sft_fsdp2" / "finetune_config.json").read_text())["_resolved"]["world_size"] == 2


def test_zero3_lora_pretraining_saves_the_single_process_adapter(runs):
    """LoRA with whole embedding and head (modules_to_save) under ZeRO-3: the adapter saved from the shards
    is not empty and equals the one process's (the loss of the step too)."""
    assert step_logs(runs / "pt_zero3")[0]["loss"] == pytest.approx(step_logs(runs / "pt")[0]["loss"], abs=TOLERANCE)
    held, whole = held_of_whole((runs / "pt_zero3.log").read_text())  # no vocabulary growth: loaded into shards
    assert 0.45 * whole < held < 0.55 * whole
    single = load_file(str(runs / "pt" / "pt_lora_model" / "adapter_model.safetensors"))
    sharded = load_file(str(runs / "pt_zero3" / "pt_lora_model" / "adapter_model.safetensors"))
    assert any("embed_tokens" in name for name in sharded) and any("lora_B" in name for name in sharded)
    assert_same_tensors(single, sharded)
    assert all(t.abs().max() > 0 for name, t in sharded.items() if "lora_B" in name)  # the step reached them


def test_zero3_reward_model_is_merged_from_the_gathered_adapter(runs, tiny_llama):
    """RM gathers the adapter and the score head from the ZeRO-3 shards into lora_adapter/ (not empty: every
    lora_B moved), and process 0 merges it into a freshly loaded base: the saved reward model equals that merge
    done here. (The adapter itself equals one process's: see the pre-training test; a one-process RM run, also
    equal within 3e-7, was measured by hand and left out for time.)"""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    held, whole = held_of_whole((runs / "rm_zero3.log").read_text())  # loaded straight into shards
    assert 0.45 * whole < held < 0.55 * whole
    adapter = load_file(str(runs / "rm_zero3" / "lora_adapter" / "adapter_model.safetensors"))
    assert any("score" in name for name in adapter)
    assert all(t.numel() > 0 and t.abs().max() > 0 for name, t in adapter.items() if "lora_B" in name)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, runs / "rm_zero3" / "lora_adapter").merge_and_unload()
    assert_same_tensors({k: v.contiguous() for k, v in merged.state_dict().items()},
                        load_file(str(runs / "rm_zero3" / "model.safetensors")))  # fmt: skip
    assert "eval_accuracy" in json.loads((runs / "rm_zero3" / "eval_results.json").read_text())


@pytest.mark.parametrize(("script", "config", "metric"), [
    ("scripts/train_dpo.py", "run_config/tiny/dpo_config.json", "eval_rewards/accuracies"),
    ("scripts/train_kto.py", "run_config/tiny/kto_config.json", "eval_rewards/margins"),
])  # fmt: skip
def test_zero3_full_preference_training_runs_with_its_reference(tmp_path, tiny_llama, script, config, metric):
    """Full DPO and KTO hold a second, frozen copy as their reference; under ZeRO-3 both are sharded (the policy
    as it loads, the reference, cast whole to the run's precision, by its DeepSpeed engine). One step runs, every
    saved weight moved, and the held-out evaluation ran."""
    out = tmp_path / "out"
    result = two_processes(script, "--model_config_file", config,
                  "--model_name_or_path", str(tiny_llama), "--use_lora", "false", "--per_device_train_batch_size", "4",
                  "--max_steps", "1", "--val_set_size", "8", "--per_device_eval_batch_size", "4",
                  "--learning_rate", "1e-4", "--deepspeed", ZERO3, "--output_dir", str(out))  # fmt: skip
    before, after = load_file(str(tiny_llama / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    assert all(after[name].shape == before[name].shape for name in before)
    assert not [name for name in before if torch.equal(before[name], after[name])]
    assert metric in json.loads((out / "eval_results.json").read_text())
    held, whole = held_of_whole(result.stderr)  # the policy loaded straight into its shards; the reference whole
    assert whole == sum(t.numel() for t in before.values()) and 0.45 * whole < held < 0.55 * whole


@pytest.mark.parametrize("script", ["scripts/train_ppo.py", "scripts/train_grpo.py"])
@pytest.mark.parametrize(("sharding", "flag", "config"), [("ZeRO-3", "--deepspeed", ZERO3),
                                                          ("FSDP2", "--fsdp_config", "run_config/tiny/fsdp2.json")])
def test_sampling_stages_refuse_sharding_with_the_reason(script, sharding, flag, config, tmp_path, tiny_llama):
    result = run_script(PYTHON, script, "--model_name_or_path", str(tiny_llama), flag, config,
                        "--output_dir", str(tmp_path / "out"), check=False,
                        env={"WORLD_SIZE": "2", "LOCAL_RANK": "0"})  # as torchrun sets them; fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{sharding} is refused" in result.stderr and "all-gather every layer's weight shards" in result.stderr


def test_resume_on_another_number_of_processes(runs):
    """Saved on 2 processes and resumed on 1, and the reverse, under ZeRO-3 and FSDP2: the steps after the resume
    log the losses of the uninterrupted one-process run. ZeRO shards fit only the process count that wrote them;
    the resume converts them to DeepSpeed's universal checkpoint first (weights-only). FSDP2's distributed
    checkpoints reshard as they load (their metadata read by our restricted unpickler)."""
    uninterrupted = [entry["loss"] for entry in step_logs(runs / "sft")]
    assert len(uninterrupted) == 3
    for folder, resumed_at in (("zero3_2to1", 1), ("zero3_1to2", 2), ("fsdp2_2to1", 1), ("fsdp2_1to2", 2)):
        logged = {entry["step"]: entry["loss"] for entry in step_logs(runs / folder)}  # the checkpoint's, then ours
        assert sorted(logged) == [1, 2, 3], folder
        for step, loss in logged.items():
            assert loss == pytest.approx(uninterrupted[step - 1], abs=TOLERANCE), (folder, step)
        manifest = json.loads((runs / folder / "run_manifest.json").read_text())
        assert manifest["resumed_from"].endswith(f"checkpoint-{resumed_at}"), folder
        results = json.loads((runs / folder / "train_results.json").read_text())
        assert results["train_steps_whole_run"] == 3 and results["epoch"] > 0, folder
    converted = runs / "zero3_2to1" / "checkpoint-1"
    assert (converted / "latest_universal").read_text() == "global_step1_universal"
    # The run went on from the converted state and saves its own ZeRO checkpoints, one process's shards.
    assert len(list((runs / "zero3_2to1" / "checkpoint-3").glob("global_step3/*optim_states.pt"))) == 1
    assert len(list((runs / "zero3_1to2" / "checkpoint-3").glob("global_step3/*optim_states.pt"))) == 2


def test_full_dpo_under_fsdp2_runs_to_the_end_on_torch_2_13(tmp_path, tiny_llama):
    """What torch 2.11 failed on two H200s, on this torch (2.13, FSDP2 on gloo): full DPO with its frozen reference,
    two steps, a held-out evaluation at step 2, the final save and the evaluation after it. Every saved weight
    moved, and the final evaluation equals the step-2 one (nothing trained in between)."""
    out = tmp_path / "out"
    fsdp_on_cpu(2, "--model_config_file", "run_config/tiny/dpo_config.json", "--model_name_or_path", str(tiny_llama),
                "--use_lora", "false", "--per_device_train_batch_size", "4", "--max_steps", "2", "--eval_steps", "2",
                "--val_set_size", "8", "--learning_rate", "1e-4", "--fsdp_config", FSDP2, "--output_dir", str(out),
                script="scripts/train_dpo.py")  # fmt: skip
    before, after = load_file(str(tiny_llama / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys() and not [name for name in before if torch.equal(before[name], after[name])]
    state = json.loads((out / "trainer_state.json").read_text())
    at_step_2 = next(entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry)
    assert json.loads((out / "eval_results.json").read_text())["eval_loss"] == pytest.approx(at_step_2, abs=1e-6)


@pytest.mark.parametrize(("torch_version", "refused"), [("2.11.0+cu130", True), ("2.13.0", False)])
def test_full_preference_training_under_fsdp2_needs_torch_2_13(torch_version, refused, monkeypatch):
    """On two H200s with torch 2.11, full DPO and KTO trained under FSDP2 and then failed in the evaluation after
    training (tests/gpu/fsdp2_checks.py; the cause, in torch 2.11's FSDP2, is in PolicyPreferenceConfig.check).
    There they stop before any work, naming the fix and the alternatives; on torch 2.13 they are allowed, and
    LoRA is allowed on either."""
    import importlib.metadata

    from common.config import ConfigError
    from common.training import PolicyPreferenceConfig

    monkeypatch.setenv("LOCAL_RANK", "0")  # as under torchrun
    monkeypatch.setattr(importlib.metadata, "version", lambda name: torch_version if name == "torch" else "0")
    full = PolicyPreferenceConfig(use_lora=False, fsdp_config="run_config/tiny/fsdp2.json")
    if refused:
        with pytest.raises(ConfigError, match=r"needs torch >= 2\.13 \(this is 2\.11\.0\+cu130\).*deepspeed_zero3"):
            full.validate()
    else:
        full.validate()
    PolicyPreferenceConfig(use_lora=True, fsdp_config="run_config/tiny/fsdp2.json").validate()


def test_fsdp_config_needs_torchrun(tmp_path, tiny_llama):
    """FSDP2 (run_config/fsdp2.json) shards over torchrun's processes: a plain launch is refused at once. (On
    CPU accelerate 1.15 never turns FSDP on, see AcceleratorState: the Trainer stages then stop with one error
    line instead of silently training unsharded. FSDP2 itself: the runs fixture, through tests/fsdp_on_cpu.py,
    and on two GPUs tests/gpu/fsdp2_checks.py.)"""
    result = run_script(PYTHON, "scripts/finetune.py", "--model_name_or_path", str(tiny_llama),
                        "--fsdp_config", "run_config/tiny/fsdp2.json", "--output_dir", str(tmp_path / "out"),
                        check=False)  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "fsdp_config shards the model over torchrun's processes" in result.stderr


# ---- Exact data position of a streaming run -------------------------------------------------------

STREAM = ["--model_config_file", "run_config/tiny/pt_config.json", "--streaming", "true", "--max_steps", "4",
          "--save_steps", "2", "--logging_steps", "1", "--warmup_steps", "0", "--lr_scheduler_type", "constant",
          "--eval_before_training", "false", "--max_eval_blocks", "2", "--use_lora", "false",
          "--modules_to_save", "null"]  # fmt: skip


def test_block_stream_resumes_from_any_block_it_yielded(tiny_llama):
    """The resumable stream gives stream_blocks' training blocks in their order, pass after pass; restarted
    from the JSON place noted after any block, it continues with exactly the blocks that followed."""
    import itertools

    from common.modeling import load_tokenizer
    from common.pretrain_data import ResumableBlockStream, corpus_files, stream_blocks

    tokenizer = load_tokenizer(str(tiny_llama))
    files = corpus_files("data_dir/pretrain")[:2]
    expected = [row["input_ids"] for row in stream_blocks(files, tokenizer, 64, 5.0, held_out=False)]
    stream = ResumableBlockStream(files, tokenizer, 64, 5.0)
    two_passes = [row["input_ids"] for row in itertools.chain(stream, stream)]
    assert two_passes == expected + expected and len(expected) > 20
    documents_per_pass = stream.documents_read // 2
    for number in (1, 7, len(expected) - 1, len(expected), len(expected) + 3):
        place = json.loads(json.dumps(stream.place_after(number)))
        resumed = ResumableBlockStream(files, tokenizer, 64, 5.0, start=place)
        in_pass = number if number <= len(expected) else number - len(expected)
        assert [row["input_ids"] for row in resumed] == expected[in_pass:], number
        # Only the documents after the place were read (the place counts those read up to it, over both passes).
        read_before = place["documents_read_this_session"] - (documents_per_pass if number > len(expected) else 0)
        assert resumed.documents_read == documents_per_pass - read_before, number
        assert [row["input_ids"] for row in resumed] == expected  # the next pass begins at the corpus' start


def test_streaming_pretraining_resumes_at_its_place_in_the_corpus(tmp_path, tiny_models):
    """Streaming pre-training saved at step 2 by one process and resumed by two (plain DDP, whose checkpoint
    holds whole weights and optimizer state, so it resumes on any count): the same blocks in the same order
    (a hash chain over them) and the same losses as the uninterrupted run, and the resumed session reads only
    the documents after the checkpoint's place (its count: the uninterrupted run's at step 4 minus at step 2)."""
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    one_process("scripts/pretrain.py", *STREAM, "--output_dir", str(uninterrupted))
    two_processes("scripts/pretrain.py", *STREAM, "--resume_from_checkpoint", "true",
                  "--output_dir", str(continued(uninterrupted, 2, resumed)))  # fmt: skip
    losses = {entry["step"]: entry["loss"] for entry in step_logs(uninterrupted)}
    assert len(losses) == 4
    for step, loss in ((entry["step"], entry["loss"]) for entry in step_logs(resumed)):
        assert loss == pytest.approx(losses[step], abs=TOLERANCE), step
    assert json.loads((resumed / "pretrain_config.json").read_text())["_resolved"]["world_size"] == 2

    def data_state(run: Path, step: int) -> dict:
        return json.loads((run / f"checkpoint-{step}" / "data_state.json").read_text())

    at_save, at_end, resumed_end = data_state(uninterrupted, 2), data_state(uninterrupted, 4), data_state(resumed, 4)
    assert at_save["block_number"] == 8 and at_end["block_number"] == resumed_end["block_number"] == 16
    assert resumed_end["blocks_sha256_chain"] == at_end["blocks_sha256_chain"]
    assert resumed_end["documents_read_this_session"] == (
        at_end["documents_read_this_session"] - at_save["documents_read_this_session"]
    )
    manifest = json.loads((resumed / "checkpoint-4" / "checkpoint_manifest.json").read_text())
    assert "data_state.json" in manifest["files"]  # written before the manifest, so checked on the next resume


# ---- FSDP2 checkpoints are read without running code ----------------------------------------------


def test_distributed_checkpoint_metadata_is_read_without_running_code(tmp_path):
    """FSDP2 checkpoints are torch distributed checkpoints, whose `.metadata` torch reads with pickle.load. Under
    our guard (active whenever an FSDP run trains) a real one loads: a model with its AdamW state, saved by one
    process, comes back equal. A planted one that names a function to run is refused in one line, and the
    function never runs."""
    import os

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from common.runs import RunError, distributed_checkpoint_metadata_restricted

    def trained(seed: int) -> tuple[dict, dict]:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
        optimizer = torch.optim.AdamW(model.parameters())
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
        return get_state_dict(model, optimizer)

    saved_model, saved_optimizer = trained(0)
    dcp.save({"model": saved_model, "optim": saved_optimizer}, checkpoint_id=str(tmp_path / "ckpt"))
    loaded_model, loaded_optimizer = trained(1)
    assert not torch.equal(loaded_model["0.weight"], saved_model["0.weight"])
    with distributed_checkpoint_metadata_restricted():
        dcp.load({"model": loaded_model, "optim": loaded_optimizer}, checkpoint_id=str(tmp_path / "ckpt"))
    assert_same_tensors(saved_model, loaded_model)
    assert_same_tensors(saved_optimizer["state"]["0.weight"], loaded_optimizer["state"]["0.weight"])

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / "ckpt" / ".metadata").write_bytes(pickle.dumps(Planted()))
    with pytest.raises(RunError, match=r"refusing to load .*\.metadata: not a distributed checkpoint's metadata "
                                       r"\(posix\.system is not part"):  # fmt: skip
        with distributed_checkpoint_metadata_restricted():
            dcp.load({"model": loaded_model}, checkpoint_id=str(tmp_path / "ckpt"))
    assert not marker.exists()
    # A name the metadata module only imports (os, dataclasses.field, ...) is no record of it: refused too.
    (tmp_path / "ckpt" / ".metadata").write_bytes(b"ctorch.distributed.checkpoint.metadata\nfield\n)R.")
    with pytest.raises(RunError, match=r"torch\.distributed\.checkpoint\.metadata\.field is not part"):
        with distributed_checkpoint_metadata_restricted():
            dcp.load({"model": loaded_model}, checkpoint_id=str(tmp_path / "ckpt"))
