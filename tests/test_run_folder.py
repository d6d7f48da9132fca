"""The run folder can be trusted: overwriting moves the earlier run aside, a resume takes only a complete
checkpoint of this run, SIGTERM stops with a saved checkpoint, a failed write is one error line.

Unit tests on hand-made checkpoint folders, then a few runs of scripts/finetune.py on the tiny Llama (four
steps, a checkpoint after each) that resume from a stop or a damaged folder and must end with exactly the
weights of the uninterrupted run."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from common import runs
from common.runs import RunError
from conftest import PYTHON, kill_when, run_script, signal_when

# ---- Unit tests on fake folders -------------------------------------------------------------------


def fake_checkpoint(output_dir: Path, step: int, run_id: str | None, manifest: bool = True) -> Path:
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name, size in (("model.safetensors", 3000), ("optimizer.pt", 5000), ("rng_state.pth", 100),
                       ("scheduler.pt", 50), ("trainer_state.json", 80)):  # fmt: skip
        (folder / name).write_bytes(bytes([step % 256]) * size)
    if manifest:
        runs.write_checkpoint_manifest(folder, run_id, step)
    return folder


def test_newest_complete_checkpoint_of_this_run_is_chosen_and_each_skip_says_why(tmp_path, caplog):
    out = tmp_path / "run"
    for step in (1, 2, 3, 4, 5, 6, 7):
        fake_checkpoint(out, step, "A" if step != 6 else "B", manifest=step != 7)
    (out / "checkpoint-5" / "optimizer.pt").unlink()
    with open(out / "checkpoint-4" / "model.safetensors", "r+b") as handle:
        handle.truncate(123)
    with open(out / "checkpoint-3" / "rng_state.pth", "r+b") as handle:  # same size, one byte changed
        handle.write(b"\xff")
    (out / "checkpoint-notes").mkdir()  # not a checkpoint: ignored, never looked into
    (out / "checkpoint-99.tmp").mkdir()
    with caplog.at_level(logging.WARNING, logger="common.runs"):
        assert runs.last_complete_checkpoint(out, "A") == out / "checkpoint-2"
    skipped = [r.getMessage() for r in caplog.records]
    assert skipped == [
        f"skipping {out / 'checkpoint-7'}: it did not finish saving (no checkpoint_manifest.json)",
        f"skipping {out / 'checkpoint-6'}: it belongs to run B, not to this folder's run A",
        f"skipping {out / 'checkpoint-5'}: optimizer.pt missing",
        f"skipping {out / 'checkpoint-4'}: model.safetensors size 123 != 3000",
        f"skipping {out / 'checkpoint-3'}: rng_state.pth sha256 differs from its manifest (changed after the save)",
    ]
    assert runs.last_complete_checkpoint(out, "B") == out / "checkpoint-6"
    assert runs.last_complete_checkpoint(out, None) == out / "checkpoint-6"  # a folder without run_id.json
    manifest = json.loads((out / "checkpoint-2" / "checkpoint_manifest.json").read_text())
    assert manifest["run_id"] == "A" and manifest["global_step"] == 2
    assert manifest["files"]["optimizer.pt"] == {
        "size": 5000,
        "sha256": hashlib.sha256(bytes([2]) * 5000).hexdigest(),
    }


def test_checkpoints_from_before_manifests_resume_only_where_no_checkpoint_has_one(tmp_path, caplog):
    legacy = tmp_path / "legacy"
    for step in (2, 4):
        fake_checkpoint(legacy, step, None, manifest=False)
    (legacy / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (legacy / "checkpoint-4" / "trainer_state.json").write_text(
        '{"global_step": 4'
    )  # cut short: not complete
    with caplog.at_level(logging.WARNING, logger="common.runs"):
        assert runs.last_complete_checkpoint(legacy, None) == legacy / "checkpoint-2"
    assert "checkpoint-2 has no checkpoint_manifest.json (saved before manifests" in caplog.text
    fake_checkpoint(legacy, 6, "A")  # once saves write manifests, a checkpoint without one is a broken save
    (legacy / "checkpoint-6" / "optimizer.pt").unlink()
    assert runs.last_complete_checkpoint(legacy, "A") is None


def test_resume_request_that_cannot_be_met_is_one_error_and_changes_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run_id.json").write_text(json.dumps({"run_id": "A"}))
    record = {"finetune_config.json": '{"lr": 1}', "run_manifest.json": '{"seed": 1}'}
    for name, text in record.items():
        (out / name).write_text(text)
    fake_checkpoint(out, 4, "A")
    (out / "checkpoint-4" / "rng_state.pth").unlink()
    other = fake_checkpoint(tmp_path / "other", 8, "B")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))

    for resume, message in [
        ("true", f"--resume_from_checkpoint true, but {out} holds no complete checkpoint of run A"),
        (str(out / "checkpoint-4"), f"cannot resume from {out / 'checkpoint-4'}: rng_state.pth missing"),
        (str(other), f"cannot resume from {other}: it belongs to run B, not to this folder's run A"),
    ]:
        config = SimpleNamespace(
            output_dir=str(out), resume_from_checkpoint=resume, overwrite_output_dir=False
        )
        with pytest.raises(RunError) as raised:
            runs.prepare_run_dir(config)
        assert str(raised.value) == message
    # The earlier run record was neither renamed nor rewritten (write_run_record runs only after this).
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert all((out / name).read_text() == text for name, text in record.items())


def test_overwrite_moves_the_earlier_run_aside_and_deletes_nothing(tmp_path, caplog):
    out = tmp_path / "run"
    fake_checkpoint(out, 2, "A")
    (out / "model.safetensors").write_bytes(b"weights")
    earlier = {p.relative_to(out): runs.sha256_of(p) for p in out.rglob("*") if p.is_file()}

    config = SimpleNamespace(output_dir=str(out), resume_from_checkpoint=None, overwrite_output_dir=False)
    with pytest.raises(RunError, match="already holds a run"):
        runs.prepare_run_dir(config)
    config.overwrite_output_dir = True
    with caplog.at_level(logging.WARNING, logger="common.runs"):
        assert runs.prepare_run_dir(config) == (out, None)
    (aside,) = out.iterdir()
    assert aside.name.startswith(".previous-") and aside.name.endswith("Z")
    assert {p.relative_to(aside): runs.sha256_of(p) for p in aside.rglob("*") if p.is_file()} == earlier
    assert f"moved to {aside} (nothing was deleted)" in caplog.text
    # A folder holding only earlier runs moved aside is free for a fresh run; the fresh run gets a new id.
    config.overwrite_output_dir = False
    assert runs.prepare_run_dir(config) == (out, None)
    run_id = runs.ensure_run_id(out)
    assert len(run_id) == 32 and runs.read_run_id(out) == run_id == runs.ensure_run_id(out)


def test_a_failed_write_is_one_line_naming_the_folder_and_the_errno(tmp_path, monkeypatch):
    # ENOSPC cannot be produced on demand here (tests run as root, no tmpfs): a save that raises it.
    def full_disk(*args, **kwargs):
        raise OSError(
            errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "checkpoint-4" / "optimizer.pt")
        )

    monkeypatch.setattr(runs, "hash_files", full_disk)
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    with pytest.raises(RunError) as raised, runs.save_errors_as_run_error(folder):
        runs.write_checkpoint_manifest(folder, "A", 4)
    assert str(raised.value) == (
        f"saving {folder} failed: No space left on device (ENOSPC); the complete checkpoints saved before it are kept"
    )
    # torch.save and safetensors report failed writes in their own words, without an OSError.
    torch_error = RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed "
                               "writing file data/0: file write failed")  # fmt: skip
    assert runs.write_error_text(torch_error).endswith("file write failed")
    rust_error = Exception(
        'Error while serializing: IoError(Os { code: 30, kind: ReadOnlyFilesystem, message: "x" })'
    )
    assert runs.write_error_text(rust_error) == "Read-only file system (EROFS)"
    rust_error = Exception("Error while serializing: I/O error: No space left on device (os error 28)")
    assert runs.write_error_text(rust_error) == "No space left on device (ENOSPC)"
    assert runs.write_error_text(ValueError("shapes do not match")) is None
    with pytest.raises(ValueError), runs.save_errors_as_run_error(folder):
        raise ValueError("shapes do not match")  # not a write error: it keeps its traceback


def test_stop_signals_only_set_a_flag_and_a_second_signal_gets_the_earlier_handler():
    received: list[int] = []
    earlier = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        signals = runs.StopSignals()
        signals.install()
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.requested and signals.name == "SIGTERM" and signals.exit_code == 143
        assert received == []  # the first one only asked to stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert received == [signal.SIGTERM]  # the second one reached the handler from before
        signals.restore()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, earlier)


def test_a_signal_arriving_during_the_stop_check_is_kept_for_the_next_step(monkeypatch):
    """The handler can run while the per-step check is all-reducing the flag (the check comes right after the
    step's log line, when a scheduler's or the test's signal lands): that step's answer is the reduced one,
    the same on every rank, and the signal stops the next step instead of being overwritten."""
    def all_reduce_during_which_sigterm_arrives(signum, device=None):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, after the flag was read
        return signum

    signals = runs.StopSignals()
    signals.install()
    try:
        monkeypatch.setattr(runs, "signal_on_any_rank", all_reduce_during_which_sigterm_arrives)
        assert signals.requested_on_any_rank() is False
        monkeypatch.setattr(runs, "signal_on_any_rank", lambda signum, device=None: signum)
        assert signals.requested_on_any_rank() is True and signals.name == "SIGTERM"
    finally:
        signals.restore()


def test_whole_run_loss_and_tokens_join_the_sessions(tmp_path):
    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(
        json.dumps({"global_step": 4, "num_input_tokens_seen": 400})
    )
    runs.write_checkpoint_manifest(checkpoint, "A", 4, {"loss_sum": 4 * 3.0, "loss_steps": 4})
    state = SimpleNamespace(global_step=10, num_input_tokens_seen=1000)
    metrics = runs.whole_run_metrics(state, runs.ResumePoint.of(checkpoint), {"train_loss": 2.0})  # the 6 steps of this session
    assert metrics == {
        "train_steps_whole_run": 10,
        "train_loss_whole_run": pytest.approx((4 * 3.0 + 6 * 2.0) / 10),
        "num_input_tokens_seen_whole_run": 1000,
        "num_input_tokens_seen_this_session": 600,
    }
    fresh = runs.whole_run_metrics(
        SimpleNamespace(global_step=10, num_input_tokens_seen=0), runs.ResumePoint(), {"train_loss": 2.0}
    )
    assert fresh == {"train_steps_whole_run": 10, "train_loss_whole_run": 2.0}


def test_run_record_fingerprints_the_base_model_and_every_loaded_package(tmp_path, tiny_llama):
    import numpy  # noqa: F401  (loaded, not in TRACKED_PACKAGES)

    out = tmp_path / "run"
    out.mkdir()
    run_id = runs.write_run_record(
        out, {"lr": 1}, "x_config.json", [], 1, model_paths=[str(tiny_llama), "org/hub-model"]
    )
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["run_id"] == run_id == runs.read_run_id(out)
    assert manifest["packages"]["numpy"] == numpy.__version__ and "torch" in manifest["packages"]
    files = manifest["models"][str(tiny_llama)]["files"]
    assert files["config.json"]["sha256"] == runs.sha256_of(tiny_llama / "config.json")
    assert files["model.safetensors"]["sha256"] == runs.sha256_of(tiny_llama / "model.safetensors")  # < 2 GB
    assert "tokenizer.json" in files and "tokenizer.model" not in files  # recorded where present
    assert manifest["models"]["org/hub-model"] == {"local": False}
    # A resume keeps the run id and the record of the invocation before it.
    assert runs.write_run_record(out, {"lr": 2}, "x_config.json", [], 1) == run_id
    assert len(list(out.glob("run_manifest.before-*.json"))) == 1


# ---- End to end: scripts/finetune.py on the tiny Llama ------------------------------------------

TRAIN = "data_dir/sample_sft.train.json"
STEPS = 4


def finetune_args(tiny_llama: Path, output_dir: Path) -> list[str]:
    """Four steps, a complete checkpoint after each (none rotated away), constant learning rate."""
    return [PYTHON, "scripts/finetune.py", "--model_name_or_path", str(tiny_llama), "--data_path", TRAIN,
            "--output_dir", str(output_dir), "--max_steps", str(STEPS), "--save_steps", "1",
            "--save_total_limit", "null", "--logging_steps", "1", "--val_set_size", "0", "--cutoff_len", "64",
            "--batch_size", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3",
            "--lr_scheduler_type", "constant", "--seed", "7"]  # fmt: skip


def final_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def assert_bitwise_equal(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    assert [name for name in a if not torch.equal(a[name], b[name])] == []


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): runs.sha256_of(p) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, tiny_llama) -> Path:
    """The uninterrupted run every interrupted one must end equal to."""
    out = tmp_path_factory.mktemp("straight") / "run"
    run_script(*finetune_args(tiny_llama, out))
    return out


def test_damaged_newest_checkpoints_are_skipped_and_the_resume_equals_the_uninterrupted_run(
    tmp_path, tiny_llama, straight_run
):
    # The run died during its final save, and checkpoints 2-4 were damaged afterwards.
    out = tmp_path / "run"
    shutil.copytree(straight_run, out)
    (out / "model.safetensors").unlink()
    (out / "checkpoint-4" / "rng_state.pth").unlink()
    (out / "checkpoint-3" / "optimizer.pt").unlink()
    with open(out / "checkpoint-2" / "model.safetensors", "r+b") as handle:
        handle.truncate(1000)
    (out / "checkpoint-notes").mkdir()
    (out / "checkpoint-notes" / "todo.txt").write_text("not a checkpoint")

    resumed = run_script(*finetune_args(tiny_llama, out), "--resume_from_checkpoint", "true")
    assert f"skipping {out / 'checkpoint-4'}: rng_state.pth missing" in resumed.stderr
    assert f"skipping {out / 'checkpoint-3'}: optimizer.pt missing" in resumed.stderr
    assert f"skipping {out / 'checkpoint-2'}: model.safetensors size 1000 != 20001904" in resumed.stderr
    assert f"resuming from {out / 'checkpoint-1'}" in resumed.stderr
    assert_bitwise_equal(final_weights(out), final_weights(straight_run))
    assert (out / "checkpoint-notes" / "todo.txt").read_text() == "not a checkpoint"
    results = json.loads((out / "train_results.json").read_text())
    straight = json.loads((straight_run / "train_results.json").read_text())
    assert results["train_steps_whole_run"] == STEPS
    assert results["train_loss_whole_run"] == pytest.approx(straight["train_loss"], rel=1e-6)
    assert results["num_input_tokens_seen_whole_run"] == straight["num_input_tokens_seen"]


class _PlantedPickle:
    """Unpickling this creates the marker file: what a replaced checkpoint file would do if it were loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_in_a_checkpoint_never_runs(tmp_path, tiny_llama, straight_run):
    """Even with the manifest rewritten to match it, a pickle in place of optimizer.pt is refused unexecuted."""
    import pickle

    out, marker = tmp_path / "run", tmp_path / "pwned"
    shutil.copytree(straight_run, out)
    (out / "model.safetensors").unlink()
    (out / "checkpoint-4" / "optimizer.pt").write_bytes(pickle.dumps(_PlantedPickle(marker)))
    manifest = runs.read_checkpoint_manifest(out / "checkpoint-4")
    runs.write_checkpoint_manifest(out / "checkpoint-4", manifest["run_id"], manifest["global_step"])

    result = run_script(*finetune_args(tiny_llama, out), "--resume_from_checkpoint", "true", check=False)
    assert not marker.exists()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"error: refusing to resume from {out / 'checkpoint-4'}: a file there holds more than tensors" in (
        result.stderr
    )


def test_sigkill_mid_run_and_the_resume_equals_the_uninterrupted_run(tmp_path, tiny_llama, straight_run):
    out = tmp_path / "run"
    command = finetune_args(tiny_llama, out)
    assert kill_when(command, out / "checkpoint-2" / "checkpoint_manifest.json") == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()

    resumed = run_script(*command, "--resume_from_checkpoint", "true")
    resumed_at = int(resumed.stderr.split(f"resuming from {out / 'checkpoint-'}")[1].split()[0])
    assert resumed_at >= 2  # checkpoint-2, or a later one the run finished saving before the kill landed
    assert_bitwise_equal(final_weights(out), final_weights(straight_run))


def test_rotation_keeps_only_finished_checkpoints_of_this_run_and_never_a_users_folder(
    tmp_path, tiny_llama, straight_run
):
    """save_total_limit 1: each older checkpoint goes only once the new one's manifest is written (the
    Trainer's own rotation ran before it); another run's checkpoint and checkpoint-notes stay."""
    out = tmp_path / "run"
    shutil.copytree(straight_run, out)
    (out / "checkpoint-notes").mkdir()
    (out / "checkpoint-notes" / "todo.txt").write_text("try lr 3e-4")
    foreign = out / "checkpoint-0"  # the same files, claimed by another run
    shutil.copytree(out / "checkpoint-1", foreign)
    manifest = runs.read_checkpoint_manifest(foreign)
    runs.write_checkpoint_manifest(foreign, "another-run", manifest["global_step"])

    args = finetune_args(tiny_llama, out)
    args[args.index("--max_steps") + 1], args[args.index("--save_total_limit") + 1] = "6", "1"
    run_script(*args, "--resume_from_checkpoint", "true")
    numeric = sorted(p.name for p in out.iterdir() if runs.CHECKPOINT_RE.match(p.name))
    assert numeric == ["checkpoint-0", "checkpoint-6"]
    assert runs.checkpoint_problem(out / "checkpoint-6", runs.read_run_id(out)) is None
    assert runs.checkpoint_problem(foreign, "another-run") is None
    assert (out / "checkpoint-notes" / "todo.txt").read_text() == "try lr 3e-4"


def test_sigterm_over_an_overwritten_run_saves_stops_and_resumes_to_the_uninterrupted_weights(
    tmp_path, tiny_llama, straight_run
):
    # An earlier run in the folder (its checkpoint-4 is newer than anything the new run will have saved).
    out = tmp_path / "run"
    shutil.copytree(straight_run, out)
    earlier, earlier_id = file_hashes(out), runs.read_run_id(out)

    new_checkpoint = out / "checkpoint-1" / "checkpoint_manifest.json"  # (the earlier run's was moved aside)
    code, stderr = signal_when([*finetune_args(tiny_llama, out), "--overwrite_output_dir", "true"],
                               lambda: any(out.glob(".previous-*")) and new_checkpoint.is_file(), signal.SIGTERM)  # fmt: skip
    assert code == 143, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    step = int(last_line.split("after step ")[1].split(";")[0])
    assert 1 <= step < STEPS, last_line
    assert last_line == (f"stopped by SIGTERM after step {step}; checkpoint saved in {out / f'checkpoint-{step}'}; "
                         "resume with --resume_from_checkpoint true")  # fmt: skip
    assert "Traceback" not in stderr and not (out / "model.safetensors").exists()  # no final save

    # Every file of the earlier run is still there, unchanged, moved aside.
    (aside,) = out.glob(".previous-*")
    assert file_hashes(aside) == earlier
    run_id = runs.read_run_id(out)
    assert run_id != earlier_id
    assert runs.checkpoint_problem(out / f"checkpoint-{step}", run_id) is None

    resumed = run_script(*finetune_args(tiny_llama, out), "--resume_from_checkpoint", "true")
    assert f"resuming from {out / f'checkpoint-{step}'}" in resumed.stderr  # the new run's, not the old one's
    assert (
        json.loads((out / f"checkpoint-{STEPS}" / "checkpoint_manifest.json").read_text())["run_id"] == run_id
    )
    assert_bitwise_equal(final_weights(out), final_weights(straight_run))
    results = json.loads((out / "train_results.json").read_text())
    straight = json.loads((straight_run / "train_results.json").read_text())
    assert results["train_loss_whole_run"] == pytest.approx(straight["train_loss"], rel=1e-6)


def test_a_save_that_cannot_write_is_one_error_line_and_keeps_the_earlier_checkpoints(
    tmp_path, tiny_llama, straight_run
):
    # A real failed write: files may not grow past 2 MB (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the
    # write fails with EFBIG). chmod cannot make a folder read-only to root, and mounting a full tmpfs needs
    # privileges the tests do not have. checkpoint-3's 20 MB weights are the first file too large.
    out = tmp_path / "run"
    shutil.copytree(straight_run, out, ignore=shutil.ignore_patterns("checkpoint-[34]"))
    (out / "model.safetensors").unlink()
    command = " ".join(
        [*finetune_args(tiny_llama, out), "--resume_from_checkpoint", "true", "--cache_dir", "null"]
    )
    result = run_script("bash", "-c", f"ulimit -f 2048 && exec {command}", check=False)
    assert result.returncode == 1
    # (The Trainer's progress bar still prints its last state as the interpreter exits.)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: saving {out / 'checkpoint-3'} failed: File too large (EFBIG); "
                      "the complete checkpoints saved before it are kept"]  # fmt: skip
    assert "Traceback" not in result.stderr
    run_id = runs.read_run_id(out)
    assert runs.checkpoint_problem(out / "checkpoint-2", run_id) is None
    assert (
        runs.checkpoint_problem(out / "checkpoint-3", run_id)
        == "it did not finish saving (no checkpoint_manifest.json)"
    )
    assert runs.last_complete_checkpoint(out, run_id) == out / "checkpoint-2"


def test_large_files_are_hashed_in_parts_and_any_changed_part_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "HASH_PART_BYTES", 1000)  # 256 MiB in real runs
    folder = tmp_path / "checkpoint-2"
    folder.mkdir()
    big = bytes(range(256)) * 20  # 5,120 bytes: six parts, the last one short
    (folder / "optimizer.pt").write_bytes(big)
    (folder / "trainer_state.json").write_text('{"global_step": 2}')  # 18 bytes: hashed whole
    runs.write_checkpoint_manifest(folder, "A", 2)
    files = json.loads((folder / "checkpoint_manifest.json").read_text())["files"]
    assert files["optimizer.pt"] == {
        "size": 5120,
        "sha256_parts": [hashlib.sha256(big[i : i + 1000]).hexdigest() for i in range(0, 5120, 1000)],
        "part_bytes": 1000,
    }
    assert files["trainer_state.json"]["sha256"] == runs.sha256_of(folder / "trainer_state.json")
    assert runs.checkpoint_problem(folder, "A") is None
    changed = bytearray(big)
    changed[3500] ^= 1  # one bit in the fourth part, size unchanged
    (folder / "optimizer.pt").write_bytes(bytes(changed))
    assert runs.checkpoint_problem(folder, "A") == "optimizer.pt sha256 differs from its manifest (changed after the save)"
    # a manifest from before parts (one sha256 for the whole large file) is still checked as written
    (folder / "optimizer.pt").write_bytes(big)
    manifest = json.loads((folder / "checkpoint_manifest.json").read_text())
    manifest["files"]["optimizer.pt"] = {"size": 5120, "sha256": hashlib.sha256(big).hexdigest()}
    (folder / "checkpoint_manifest.json").write_text(json.dumps(manifest))
    assert runs.checkpoint_problem(folder, "A") is None
    manifest["files"]["optimizer.pt"] = {"size": 5120, "sha256_parts": [], "part_bytes": 0}
    (folder / "checkpoint_manifest.json").write_text(json.dumps(manifest))
    assert runs.checkpoint_problem(folder, "A") == "optimizer.pt: its manifest entry has no valid part_bytes (0)"
