"""The run folder's lifecycle, in the order every stage calls it, and what a run writes beside its outputs.

1. `prepare_run_dir(config)` (every rank, before any write): refuses a folder that already holds a run
   unless the user asked to resume or overwrite. Overwriting never deletes: the earlier run's files are
   moved into `<output_dir>/.previous-<UTC time>/`. Resuming picks the checkpoint (`resolve_checkpoint`).
2. `write_run_record(...)` (after the checkpoint is resolved, so a refused resume changes nothing): the
   resolved config, `run_manifest.json` (command, commit, the versions of every loaded package, data and
   base-model SHA-256, seed, hardware) and the run id in `run_id.json` (new for a fresh run, kept on resume).
3. After every checkpoint save, as its last step: `write_checkpoint_manifest(folder, run_id, step)` lists
   each file's size and SHA-256 and the run id. `last_complete_checkpoint(output_dir, run_id)` resumes only
   from a checkpoint whose files all match its manifest and whose run id is this run's.
4. SIGTERM / SIGINT (a scheduler's pre-emption, Ctrl-C) only ask the loop to stop after the current step,
   save a complete checkpoint and exit 143 / 130 (`StopSignals`, `stop_and_exit`).

Trainer-based scripts get 3 and 4 from `TrainerRunGuard(output_dir, checkpoint)`: its `callbacks` go into
the Trainer, `guard.train(trainer)` replaces `trainer.train(...)`, `guard.record_train_metrics(...)` writes
the loss and token totals over every resumed session with the session's speed.

A loop without the Trainer (scripts/train_ppo.py) calls, in this order: `prepare_run_dir(config)`;
`run_id = write_run_record(..., checkpoint=checkpoint)`; `last_complete_checkpoint(output_dir, run_id)` when it
looks for a checkpoint itself; after writing each checkpoint folder (on the main process, once every rank has
written its part) `write_checkpoint_manifest(folder, run_id, step)`; around the save,
`save_errors_as_run_error(folder)`; and `StopSignals().install()` with a check of `.requested` after each
step, then a save and `stop_and_exit(signals, step, folder)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import pickle
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
TRACKED_PACKAGES = (
    "torch", "transformers", "datasets", "peft", "trl", "accelerate", "deepspeed",
    "bitsandbytes", "tokenizers", "wandb",
)  # fmt: skip
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
RUN_ID_FILE = "run_id.json"
CHECKPOINT_MANIFEST = "checkpoint_manifest.json"
PREVIOUS_PREFIX = ".previous-"  # earlier runs moved aside by --overwrite_output_dir
# Base-model files whose SHA-256 the run manifest records (weights only when small: see model_fingerprint).
MODEL_FILES = (
    "config.json", "model.safetensors.index.json", "model.safetensors", "adapter_config.json",
    "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
    "special_tokens_map.json",
)  # fmt: skip
HASHED_WEIGHTS_LIMIT = 2 * 2**30  # larger single weight files get their size only (hashing 15 GB takes ~15 s)


StageConfigT = TypeVar("StageConfigT", bound="RunFolderSettings")


class RunError(RuntimeError):
    """A problem with the run's folders or settings; scripts print it without a traceback."""


def setup_logging() -> None:
    """One log format for every script; only the main process logs at INFO under torchrun."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        level=logging.INFO if rank == 0 else logging.WARNING,
        force=True,
    )


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class RunFolderSettings(Protocol):
    """The run settings `prepare_run_dir` reads (every stage's config has them)."""

    output_dir: str
    resume_from_checkpoint: str | None
    overwrite_output_dir: bool


def resume_requested(resume_from_checkpoint: str | None) -> bool:
    return resume_from_checkpoint not in (None, "", "false", "False")


def prepare_run_dir(config: RunFolderSettings) -> tuple[Path, Path | None]:
    """(output_dir, checkpoint to resume from or None): the folder is created, refused when it already holds
    a run the user did not ask to resume or overwrite, or its earlier run is moved aside (never deleted).

    Writes nothing but the folder (and, overwriting, the move), so a refused resume leaves the run as it was."""
    resume = resume_requested(config.resume_from_checkpoint)
    output_dir = prepare_output_dir(config.output_dir, resume, config.overwrite_output_dir)
    checkpoint = resolve_checkpoint(config.resume_from_checkpoint, output_dir)
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    return output_dir, checkpoint


class OpenedRun(NamedTuple, Generic[StageConfigT]):
    config: StageConfigT
    output_dir: Path
    checkpoint: Path | None  # to resume from
    precision: str  # resolved on this machine: bf16, fp16 or fp32
    resolved: dict[str, Any]  # the settings as the run record writes them; stages add to its "_resolved"


def open_run(
    config_class: type[StageConfigT], argv: list[str] | None, description: str | None,
    config_file_flags: dict[str, str] | None = None,
) -> OpenedRun[StageConfigT]:
    """Every training stage's opening, the same for all: one log format; the config (command line over the
    JSON files of `--model_config_file` / `--lora_hyperparams_file`, or of `config_file_flags`); the run
    folder prepared before the heavy imports, so a refused folder or resume is reported at once; then the
    precision this machine gives, the settings for the run record, and the seed."""
    from common.config import RUN_CONFIG_FILES, parse_config
    from common.training import resolved_settings

    setup_logging()
    # DeepSpeed's ZeRO-3 calls two collectives torch 2.13 deprecated, and the warning comes back on every
    # call (libraries' catch_warnings blocks reset Python's once-per-place memory): 140 lines in a one-step
    # run on two processes. Users cannot act on it; it buried a rank's real error in CI.
    warnings.filterwarnings("ignore", category=FutureWarning,
                            message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated")  # fmt: skip
    config = parse_config(config_class, argv, description=description,
                          config_file_flags=config_file_flags or RUN_CONFIG_FILES)  # fmt: skip
    output_dir, checkpoint = prepare_run_dir(config)
    from transformers import set_seed

    precision = config.resolved_precision()
    set_seed(config.seed)
    return OpenedRun(config, output_dir, checkpoint, precision, resolved_settings(config, precision))


def tool_output_dir(output_dir: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """The output folder of a tool that is not a training run (merge_lora, merge_tokenizer): refused when it
    is one of the tool's `inputs`, or not a folder, or already holds files and `overwrite` is off."""
    path = Path(output_dir)
    for source in inputs:
        if Path(source).exists() and path.resolve() == Path(source).resolve():
            raise RunError(f"output_dir {path} is the input folder {source}; choose another")
    if path.exists() and not path.is_dir():
        raise RunError(f"output_dir {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        held = ", ".join(sorted(p.name for p in path.iterdir())[:5])
        raise RunError(f"output_dir {path} already holds files ({held}, ...). Nothing was changed. "
                       "Pass --overwrite to write over them, or choose another --output_dir.")  # fmt: skip
    return path


def prepare_output_dir(output_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    """Create `output_dir`, or refuse one that already holds files unless resuming or overwriting.

    Overwriting moves the earlier run's files into `.previous-<UTC time>/` (the main process does it; the
    Trainer's checkpoint rotation would otherwise delete the old checkpoints, or resume from them)."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise RunError(f"output_dir {path} exists and is not a folder")
    held = (
        sorted(p.name for p in path.iterdir() if not p.name.startswith(PREVIOUS_PREFIX))
        if path.is_dir()
        else []
    )
    if held and not (resume or overwrite):
        raise RunError(
            f"output_dir {path} already holds a run ({', '.join(held[:5])}, ...). Nothing was changed. "
            "Pass --resume_from_checkpoint true to continue it, --overwrite_output_dir true to move it aside "
            "into a .previous-<time> folder, or choose another --output_dir."
        )
    if held and resume and overwrite:
        logger.info("resuming: overwrite_output_dir is ignored and %s keeps its files", path)
    elif held and overwrite and is_main_process():
        move_aside(path, held)
    path.mkdir(parents=True, exist_ok=True)
    return path


def move_aside(path: Path, names: Sequence[str]) -> Path:
    """Move `names` (entries of `path`) into a new `path/.previous-<UTC time>/`; nothing is deleted."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target, suffix = path / f"{PREVIOUS_PREFIX}{stamp}", 1
    while target.exists():
        target, suffix = path / f"{PREVIOUS_PREFIX}{stamp}-{suffix}", suffix + 1
    target.mkdir()
    for name in names:
        (path / name).rename(target / name)
    logger.warning("overwrite_output_dir: the earlier run's %d files and folders in %s were moved to %s "
                   "(nothing was deleted)", len(names), path, target)  # fmt: skip
    return target


def resolve_checkpoint(resume_from_checkpoint: str | None, output_dir: Path) -> Path | None:
    """The checkpoint to resume from: None (fresh run), the newest complete one of this run ("true"), or
    a folder that must be complete and of this run (when output_dir has a run id)."""
    if not resume_requested(resume_from_checkpoint):
        return None
    run_id = read_run_id(output_dir)
    if resume_from_checkpoint.lower() in ("true", "auto"):
        checkpoint = last_complete_checkpoint(output_dir, run_id)
        if checkpoint is None:
            raise RunError(f"--resume_from_checkpoint true, but {output_dir} holds no complete checkpoint"
                           + (f" of run {run_id}" if run_id else ""))  # fmt: skip
        return checkpoint
    checkpoint = Path(resume_from_checkpoint)
    problem = checkpoint_problem(checkpoint, run_id, allow_legacy=not any_manifest(checkpoint.parent))
    if problem:
        raise RunError(f"cannot resume from {checkpoint}: {problem}")
    return checkpoint


# ---- Run id ---------------------------------------------------------------------------------------


def read_run_id(output_dir: str | Path) -> str | None:
    try:
        return json.loads((Path(output_dir) / RUN_ID_FILE).read_text())["run_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_run_id(output_dir: str | Path, checkpoint: str | Path | None = None) -> str | None:
    """This run's id: the one in `run_id.json`; else the resumed checkpoint's (a folder whose run_id.json
    was lost, or a new folder continuing another's checkpoint); else a new uuid4. The main process writes
    it; another rank returns what is there (None before the main process wrote it)."""
    run_id = read_run_id(output_dir)
    if run_id or not is_main_process():
        return run_id
    manifest = read_checkpoint_manifest(Path(checkpoint)) if checkpoint else None
    run_id = (manifest or {}).get("run_id") or uuid.uuid4().hex
    if manifest:
        logger.warning("%s has no %s: continuing run %s of %s", output_dir, RUN_ID_FILE, run_id, checkpoint)
    record = {"run_id": run_id, "created": datetime.now(UTC).isoformat(timespec="seconds")}
    write_json_atomic(Path(output_dir) / RUN_ID_FILE, record)
    return run_id


# ---- Checkpoint manifests -------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half of it."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def checkpoint_files(folder: Path) -> list[str]:
    """Every file under `folder` (DeepSpeed writes a global_stepN/ subfolder), but the manifest itself."""
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(n for n in names if n not in (CHECKPOINT_MANIFEST, CHECKPOINT_MANIFEST + ".tmp"))


# A checkpoint file larger than this is hashed in parts of this size, all parts of all files at once:
# optimizer.pt alone is 2/3 of a full checkpoint (10 GB for a 1 B model, 54 GB for a 7 B one), and one
# SHA-256 stream reads ~1.5 GB/s: seconds to a minute a save. `split -b 256M` + sha256sum checks the parts.
HASH_PART_BYTES = 256 << 20


def _sha256_of_range(path: Path, start: int, length: int | None) -> str:
    """SHA-256 of `length` bytes of `path` from `start` (None: to the end), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        left = length
        while left is None or left > 0:
            block = handle.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            digest.update(block)
            left = None if left is None else left - len(block)
    return digest.hexdigest()


def hash_files(folder: Path, names: Sequence[str], part_bytes: dict[str, int | None] | None = None,
               ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each file's digest entry for a manifest: {"sha256"} of the whole file, or for one larger than
    HASH_PART_BYTES {"sha256_parts", "part_bytes"}. `part_bytes` names the scheme per file when checking an
    existing manifest (None: the whole file, as manifests written before parts recorded every file). The
    parts of all files are hashed on parallel threads (hashlib releases the GIL on large blocks)."""
    sizes = {name: (folder / name).stat().st_size for name in names}
    if part_bytes is None:
        part_bytes = {name: HASH_PART_BYTES if size > HASH_PART_BYTES else None for name, size in sizes.items()}
    jobs = [(name, start, part_bytes.get(name))  # (file, first byte, part length; None: the whole file)
            for name in names
            for start in (range(0, max(1, sizes[name]), part_bytes[name]) if part_bytes.get(name) else [0])]  # fmt: skip
    with ThreadPoolExecutor(max_workers=max(1, min(16, os.cpu_count() or 1, len(jobs)))) as pool:
        digests = list(pool.map(lambda job: _sha256_of_range(folder / job[0], job[1], job[2]), jobs))
    entries: dict[str, dict[str, Any]] = {}
    for (name, _, length), digest in zip(jobs, digests, strict=True):
        if length is None:
            entries[name] = {"sha256": digest}
        else:
            entries.setdefault(name, {"sha256_parts": [], "part_bytes": length})["sha256_parts"].append(digest)
    return entries


def write_checkpoint_manifest(
    folder: str | Path, run_id: str | None, global_step: int, extra: dict[str, Any] | None = None
) -> Path:
    """The last step of a save: `checkpoint_manifest.json` with the run id, the step and each file's size
    and SHA-256 (of its parts, for a large file). A checkpoint without it, or whose files no longer match it,
    is never resumed from."""
    folder = Path(folder)
    names = checkpoint_files(folder)
    digests = hash_files(folder, names)
    files = {name: {"size": (folder / name).stat().st_size, **digests[name]} for name in names}
    manifest = {"run_id": run_id, "global_step": global_step, "files": files, **(extra or {})}
    write_json_atomic(folder / CHECKPOINT_MANIFEST, manifest)
    return folder / CHECKPOINT_MANIFEST


def read_checkpoint_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / CHECKPOINT_MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def any_manifest(output_dir: Path) -> bool:
    return any((p / CHECKPOINT_MANIFEST).is_file() for p in output_dir.glob("checkpoint-*"))


def checkpoint_problem(folder: Path, run_id: str | None, allow_legacy: bool = False) -> str | None:
    """Why `folder` cannot be resumed from ("optimizer.pt missing", ...), or None when it is complete.

    run_id None accepts any run's checkpoint (a folder without run_id.json). allow_legacy accepts a checkpoint
    without a manifest whose trainer_state.json parses (the Trainer and train_ppo.py write it last): one
    saved before manifests existed, or by a loop that does not write them yet. Callers allow it only when no
    checkpoint beside it has a manifest; in a folder where saves write manifests, a missing one means the
    save did not finish."""
    if not folder.is_dir():
        return "no such folder"
    if not (folder / CHECKPOINT_MANIFEST).is_file():
        if allow_legacy and valid_json(folder / "trainer_state.json"):
            logger.warning("%s has no %s (saved before manifests, or by a loop without them): accepted because "
                           "its trainer_state.json is complete; its files and run id cannot be checked",
                           folder, CHECKPOINT_MANIFEST)  # fmt: skip
            return None
        return f"it did not finish saving (no {CHECKPOINT_MANIFEST})"
    manifest = read_checkpoint_manifest(folder)
    if manifest is None:
        return f"it did not finish saving ({CHECKPOINT_MANIFEST} unreadable)"
    if run_id is not None and manifest.get("run_id") != run_id:
        return f"it belongs to run {manifest.get('run_id')}, not to this folder's run {run_id}"
    files: dict[str, dict[str, Any]] = manifest["files"]
    for name, expected in files.items():  # sizes first: cheap, and they catch truncation
        path = folder / name
        if not path.is_file():
            return f"{name} missing"
        if path.stat().st_size != expected.get("size"):
            return f"{name} size {path.stat().st_size} != {expected.get('size')}"
    schemes = {name: expected.get("part_bytes") if "sha256_parts" in expected else None
               for name, expected in files.items()}  # fmt: skip
    for name, part in schemes.items():
        if part is not None and not (isinstance(part, int) and part > 0):
            return f"{name}: its manifest entry has no valid part_bytes ({part!r})"
    digests = hash_files(folder, list(files), schemes)
    for name, expected in files.items():
        if any(digests[name].get(key) != expected.get(key) for key in digests[name]):
            return f"{name} sha256 differs from its manifest (changed after the save)"
    return None


def checkpoint_run_id(folder: Path) -> str | None:
    return (read_checkpoint_manifest(folder) or {}).get("run_id")


def rotate_checkpoints(output_dir: Path, run_id: str | None, keep: int | None) -> None:
    """Keep the newest `keep` checkpoints of this run that finished saving (they have a manifest, the last
    file a save writes); checkpoint-notes, other runs' checkpoints and unfinished saves are never deleted."""
    if not keep or run_id is None:
        return
    ours = []
    for child in output_dir.iterdir():
        match = CHECKPOINT_RE.match(child.name)
        if match and child.is_dir() and checkpoint_run_id(child) == run_id:
            ours.append((int(match.group(1)), child))
    for _, old in sorted(ours)[:-keep]:
        shutil.rmtree(old)


def load_torch_state(path: Any, map_location: Any = "cpu", torch_load: Any = None) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, never arbitrary objects; what it
    refuses is one RunError. `torch_load`: the loader to call so (default torch.load)."""
    import torch

    try:
        return (torch_load or torch.load)(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise RunError(f"refusing to load {path}: not a plain tensor/state file ({first[:200]})") from None


@contextlib.contextmanager
def deepspeed_loads_weights_only() -> Iterator[None]:
    """DeepSpeed reads its checkpoint files with torch.load(weights_only=False), which would run any code a
    replaced file holds: its engine, its universal-checkpoint loader and converter (ds_to_universal). While
    this is active every torch.load is weights_only=True, allowing only the loss scaler, ZeRO stage enum and
    fragment-address records that its optimizer state contains. (The converter's worker processes are forked,
    so they inherit this.)"""
    import torch
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    allowed = [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
    original_torch_load = torch.load

    def weights_only_torch_load(file: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("weights_only", None)

        def original(f: Any, map_location: Any, weights_only: bool) -> Any:
            return original_torch_load(f, map_location, *args, weights_only=weights_only, **kwargs)

        with torch.serialization.safe_globals(allowed):
            return load_torch_state(file, map_location, original)

    def safe_load(self: Any, path: str, map_location: Any = None) -> Any:
        return weights_only_torch_load(path, map_location)

    original_engine_load = TorchCheckpointEngine.load
    TorchCheckpointEngine.load, torch.load = safe_load, weights_only_torch_load
    try:
        yield
    finally:
        TorchCheckpointEngine.load, torch.load = original_engine_load, original_torch_load


# What torch's distributed checkpoint metadata (the `.metadata` file of an FSDP2 checkpoint's folders) is made
# of: its own record classes, torch.Size and dtypes, the layout helper, and the paths it notes.
DISTRIBUTED_CHECKPOINT_GLOBALS = {
    "torch.distributed.checkpoint.metadata": None,  # every class defined there: dataclasses and enums
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "pathlib": {"Path", "PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}


class DistributedCheckpointUnpickler(pickle.Unpickler):
    """Unpickles a distributed checkpoint's metadata, building only the records listed above (and torch.Size,
    torch's dtypes); any other global, where a replaced file would name a function to run, is refused."""

    def find_class(self, module: str, name: str) -> Any:
        import torch

        allowed = DISTRIBUTED_CHECKPOINT_GLOBALS.get(module, set())
        if module in DISTRIBUTED_CHECKPOINT_GLOBALS and (allowed is None or name in allowed):
            found = super().find_class(module, name)
            # "every class defined there": not a function or module that file merely imports
            if allowed is not None or (isinstance(found, type) and found.__module__ == module):
                return found
        if module == "torch" and (name == "Size" or isinstance(getattr(torch, name, None), torch.dtype)):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a distributed checkpoint's metadata")


@contextlib.contextmanager
def distributed_checkpoint_metadata_restricted() -> Iterator[None]:
    """torch's distributed checkpoint (FSDP2's SHARDED_STATE_DICT checkpoints) reads each folder's `.metadata`
    with a plain pickle.load, which would run any code a replaced file holds; while this is active it is read by
    DistributedCheckpointUnpickler, and a refused file is one RunError. (The tensors themselves are read with
    torch.load(weights_only=True) by torch already.)"""
    import types

    import torch.distributed.checkpoint.filesystem as filesystem

    refused: list[RunError] = []

    def restricted_load(file: Any, **kwargs: Any) -> Any:
        try:
            return DistributedCheckpointUnpickler(file, **kwargs).load()
        except (pickle.UnpicklingError, EOFError, AttributeError) as err:
            refused.append(RunError(f"refusing to load {getattr(file, 'name', file)}: not a distributed "
                                    f"checkpoint's metadata ({err}); nothing in a run folder is executed"))  # fmt: skip
            raise refused[-1] from None

    original = filesystem.pickle
    filesystem.pickle = types.SimpleNamespace(**{**vars(pickle), "load": restricted_load})
    try:
        yield
    except BaseException as err:
        # torch folds a failed metadata read into its CheckpointException (a BaseException), with every rank's
        # traceback: the refusal is said alone.
        if refused and err is not refused[0]:
            raise refused[0] from None
        raise
    finally:
        filesystem.pickle = original


def zero_checkpoint_world_size(checkpoint: Path) -> int | None:
    """How many processes wrote the DeepSpeed ZeRO optimizer state in `checkpoint` (one shard each); None when
    it holds none (no engine files: a run without DeepSpeed)."""
    tag_file = checkpoint / "latest"  # DeepSpeed's pointer to its tag folder, global_stepN
    if not tag_file.is_file():
        return None
    shards = list((checkpoint / tag_file.read_text().strip()).glob("*zero_pp_rank_*_optim_states.pt"))
    return len(shards) or None


def convert_to_universal_checkpoint(checkpoint: Path) -> Path:
    """Rewrite the ZeRO state of `checkpoint` (sharded over the processes that saved it) in DeepSpeed's
    universal format, one folder per parameter, which any number of processes can load (`load_universal`).
    Converted afresh each time, weights-only: an earlier conversion is not in the checkpoint's manifest, so
    nothing vouches for it. Returns the universal folder (beside it, `latest_universal` names it)."""
    import argparse

    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    tag = (checkpoint / "latest").read_text().strip()
    target = checkpoint / f"{tag}_universal"
    shutil.rmtree(target, ignore_errors=True)
    arguments = argparse.Namespace(input_folder=str(checkpoint / tag), output_folder=str(target),
                                   num_extract_workers=1, num_merge_workers=1, keep_temp_folder=False, strict=True,
                                   inject_missing_state=True)  # fmt: skip
    with deepspeed_loads_weights_only():
        ds_to_universal(arguments)
    (checkpoint / "latest_universal").write_text(target.name)
    return target


def valid_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(output_dir: str | Path, run_id: str | None) -> Path | None:
    """Newest `checkpoint-N` (numeric N; checkpoint-notes and the like are ignored) of run `run_id` whose
    every file matches its manifest; each newer one that does not is skipped with a log line saying why.

    run_id None accepts any run's checkpoint. Only the checkpoints down to the first complete one are hashed."""
    found: list[tuple[int, Path]] = []
    for child in Path(output_dir).iterdir() if Path(output_dir).is_dir() else []:
        match = CHECKPOINT_RE.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    allow_legacy = not any_manifest(Path(output_dir))
    for _, checkpoint in sorted(found, reverse=True):
        problem = checkpoint_problem(checkpoint, run_id, allow_legacy)
        if problem is None:
            return checkpoint
        logger.warning("skipping %s: %s", checkpoint, problem)
    return None


def sha256_of(path: str | Path) -> str:
    return _sha256_of_range(Path(path), 0, None)


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """The commit and whether the tree had uncommitted changes (a dirty run cannot be repeated exactly)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def hardware_summary() -> dict[str, Any]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }


def package_versions() -> dict[str, str | None]:
    """Versions of TRACKED_PACKAGES (None: not installed) and of every installed distribution that provides
    a module loaded now (sys.modules), so a plugin or kernel package the run imported is recorded too."""
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    loaded = {name.partition(".")[0] for name in list(sys.modules)}
    for module, distributions in metadata.packages_distributions().items():
        if module not in loaded:
            continue
        for distribution in distributions:
            if distribution.lower() not in versions:
                try:
                    versions[distribution.lower()] = metadata.version(distribution)
                except metadata.PackageNotFoundError:  # a stale entry in another distribution's RECORD
                    continue
    return dict(sorted(versions.items()))


def model_fingerprint(path: str | Path) -> dict[str, Any]:
    """Size and SHA-256 of a local model or adapter folder's config, weight index (or single weights file
    under 2 GB; above it, its size only) and tokenizer files; {"local": False} for a hub name."""
    folder = Path(path)
    if not folder.is_dir():
        return {"local": False}
    files: dict[str, dict[str, Any]] = {}
    for name in MODEL_FILES:
        file = folder / name
        if not file.is_file():
            continue
        entry: dict[str, Any] = {"size": file.stat().st_size}
        if not (name.endswith(".safetensors") and entry["size"] >= HASHED_WEIGHTS_LIMIT):
            entry["sha256"] = sha256_of(file)
        files[name] = entry
    return {"local": True, "files": files}


def write_run_record(
    output_dir: Path,
    resolved_config: dict[str, Any],
    config_name: str,
    data_files: list[str],
    seed: int,
    *,
    checkpoint: str | Path | None = None,
    model_paths: Sequence[str | Path | None] = (),
) -> str | None:
    """Write `<config_name>` (the resolved config), `run_manifest.json` and, for a fresh run, `run_id.json`
    into `output_dir`; returns the run id. Call it after the checkpoint was resolved (prepare_run_dir): a
    refused resume must leave the earlier record in place.

    `checkpoint` is the one resumed from (its run id is kept when the folder lost run_id.json);
    `model_paths` are the base model / adapter / tokenizer folders whose files the manifest fingerprints."""
    if not is_main_process():
        return read_run_id(output_dir)
    run_id = ensure_run_id(output_dir, checkpoint)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for name in (config_name, "run_manifest.json"):
        earlier = output_dir / name
        if earlier.is_file():  # a resumed run keeps the record of the invocation before it
            earlier.rename(earlier.with_name(f"{earlier.stem}.before-{stamp}{earlier.suffix}"))
    (output_dir / config_name).write_text(json.dumps(resolved_config, indent=2, ensure_ascii=False) + "\n")
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "config": resolved_config,
        "git": git_state(REPO_ROOT),  # looked up at call time, so a test can point it at another repo
        "packages": package_versions(),
        "data_files": {f: sha256_of(f) for f in data_files if Path(f).is_file()},
        "models": {str(path): model_fingerprint(path) for path in dict.fromkeys(model_paths) if path},
        "seed": seed,
        "hardware": hardware_summary(),
    }
    (output_dir / "run_manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return run_id


def setup_wandb(report_to: str, project: str, run_name: str | None) -> None:
    """Make W&B safe to ask for: offline (never a login prompt, never the network) without a key."""
    if report_to != "wandb":
        return
    os.environ.setdefault("WANDB_PROJECT", project)
    if run_name:
        os.environ.setdefault("WANDB_NAME", run_name)
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").is_file()
    if os.environ.get("WANDB_MODE") not in ("offline", "disabled") and not has_key:
        os.environ["WANDB_MODE"] = "offline"
        logger.info(
            "no W&B API key: logging offline under %s/wandb/; upload later with `wandb sync <that run folder>`",
            os.environ.get("WANDB_DIR", os.getcwd()),
        )


def run_as_script(main: Any, *more_user_errors: type[Exception]) -> None:
    """Every script's entry point. A user's mistake (config, data, run folder, file system, and any of
    `more_user_errors`) ends the run with one `error:` line, never a traceback; after a successful `main` a
    distributed run tears down its process group."""
    from common.config import ConfigError
    from common.data import DataError

    try:
        main()
    except (ConfigError, DataError, RunError, OSError, *more_user_errors) as err:
        sys.exit(f"error: {err}")
    finish_distributed()


def finish_distributed() -> None:
    """Tear down the process group before the interpreter exits (torchrun, deepspeed launchers): left to
    interpreter shutdown, the C++ communicator threads can abort the process after the run has finished.
    The Trainer and DeepSpeed's engine sit in reference cycles that outlive `main`; collected only during
    interpreter shutdown, their pending communication handles are destroyed after the process group, which
    can abort (SIGABRT) a run that has already saved everything. So collect them first, while all is alive."""
    import gc

    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def step_timer_callback() -> Any:
    """A Trainer callback that times optimizer steps; `summary()` gives the median (the first steps warm up)."""
    import statistics
    import time

    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.durations: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.durations.append(time.perf_counter() - self._start)

        def summary(self) -> dict[str, float]:
            if not self.durations:
                return {}
            return {"train_step_seconds_median": statistics.median(self.durations)}

    return StepTimer()


def wandb_sync_hint(run_dir: str | Path | None) -> str:
    """Where an offline W&B run is and the command that uploads it."""
    return f"W&B offline run in {run_dir}; upload it with `wandb sync {run_dir}`"


def log_config_to_wandb(
    report_to: str, resolved_config: dict[str, Any], key: str = "resolved_config"
) -> None:
    """Add the resolved run config to the live W&B run (the Trainer logs only TrainingArguments and the
    model config, not our data, LoRA or freeze settings), and say where an offline run went."""
    if report_to != "wandb":
        return
    import wandb

    if wandb.run is None:
        logger.warning("report_to=wandb but no W&B run is active; the resolved config was not logged")
        return
    wandb.run.config.update({key: resolved_config}, allow_val_change=True)
    if wandb.run.settings.mode == "offline":
        logger.info(wandb_sync_hint(Path(wandb.run.dir).parent))


def log_eval_to_wandb(
    project: str,
    run_name: str | None,
    metrics: dict[str, Any],
    rows: list[dict[str, str]],
    per_sample: list[dict[str, float]],
    files: tuple[str | Path, ...] | list[str | Path] = (),
    config: dict[str, Any] | None = None,
) -> Path:
    """One W&B run (job_type "eval"): the metrics as summary, the predictions with their scores as a
    table, and `files` (predictions, metrics.json, the report HTML) as an "evaluation" artifact.

    Offline without an API key (setup_wandb), so it never waits for a login or the network.
    Returns the local run folder.
    """
    setup_wandb("wandb", project, run_name)
    import wandb

    run = wandb.init(project=project, name=run_name, job_type="eval", config=config or {})
    try:
        run.summary.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        score_names = list(per_sample[0]) if per_sample else []
        table = wandb.Table(columns=["index", "input", "prediction", "reference", *score_names])
        for index, (row, scores) in enumerate(zip(rows, per_sample, strict=True)):
            table.add_data(index, row["input"], row["predict"], row["target"], *scores.values())
        run.log({"predictions": table})
        artifact = wandb.Artifact(f"evaluation-{run.id}", type="evaluation")
        for path in files:
            artifact.add_file(str(path))
        run.log_artifact(artifact)
        offline = run.settings.mode == "offline"
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    logger.info(wandb_sync_hint(run_dir) if offline else f"W&B run logged (local copy {run_dir})")
    return run_dir


# ---- Save errors, stop signals and the Trainer guard ----------------------------------------------

# Write failures that torch.save and safetensors report without an OSError in the exception chain.
RUST_ERRNO_RE = re.compile(r"Os \{ code: (\d+)|\(os error (\d+)\)")
WRITE_FAILURE_RE = re.compile(
    r"file write failed|No space left|Read-only file system|Disk quota|File too large"
)


def write_error_text(err: BaseException) -> str | None:
    """'No space left on device (ENOSPC)' when `err` is a failed write (an OSError anywhere in its chain, or
    torch's / safetensors' own message for one); None for any other error."""
    current: BaseException | None = err
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            if current.errno:
                return f"{os.strerror(current.errno)} ({errno.errorcode.get(current.errno, current.errno)})"
            return str(current) or type(current).__name__
        code = RUST_ERRNO_RE.search(str(current))  # safetensors: the errno of Rust's I/O error
        if code:
            number = int(code.group(1) or code.group(2))
            return f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
        if WRITE_FAILURE_RE.search(str(current)):
            return " ".join(str(current).split())[-300:]
        current = current.__cause__ or current.__context__
    return None


def save_error(err: BaseException, folder: str | Path, saving: bool = True) -> RunError | None:
    """A one-line RunError for a failed write in `folder` (None when `err` is not one). Nothing is removed:
    the checkpoints that finished before it stay complete and resumable."""
    text = write_error_text(err)
    if text is None:
        return None
    if saving:
        return RunError(f"saving {folder} failed: {text}; the complete checkpoints saved before it are kept")
    return RunError(f"{getattr(err, 'filename', None) or folder}: {text}")


@contextlib.contextmanager
def save_errors_as_run_error(folder: str | Path) -> Iterator[None]:
    """Around a save: a disk-full, read-only or unwritable folder becomes one `error:` line, not a traceback."""
    try:
        yield
    except RunError:
        raise
    except Exception as err:
        converted = save_error(err, folder)
        if converted is None:
            raise
        raise converted from err


class StopSignals:
    """SIGTERM (a scheduler's notice before pre-emption) and SIGINT (Ctrl-C) ask the loop to stop after the
    current step. The handler only records the signal and puts back the handler that was there before, so a
    second signal acts at once (SIGTERM ends the process, Ctrl-C raises KeyboardInterrupt). A signal that
    was ignored when the run started (SIGINT of a background job) stays ignored."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("not on the main thread: SIGTERM/SIGINT keep their handlers (no graceful stop)")
            return
        for signum in self.SIGNALS:
            previous = signal.getsignal(signum)
            if previous is not signal.SIG_IGN:
                self._previous[signum] = previous
                signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        signal.signal(signum, self._previous.pop(signum, None) or signal.SIG_DFL)
        os.write(2, f"\n{signal.Signals(signum).name} received: stopping after this step with a saved "
                    "checkpoint (send it again to stop at once)\n".encode())  # fmt: skip

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous or signal.SIG_DFL)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def requested_on_any_rank(self, device: Any = None) -> bool:
        """Whether any rank has a stop signal, the same answer on every rank (all must stop after the same step,
        or the next collective hangs). A signal is only ever recorded here, never cleared: one whose handler
        runs during the all-reduce (right at the end of a step) is not overwritten and stops the next step."""
        received = signal_on_any_rank(self.signum, device)
        if received is not None and self.signum is None:
            self.signum = received
        return received is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "no signal"

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)  # the shell's code for death by that signal: 143 SIGTERM, 130 SIGINT


def signal_on_any_rank(signum: int | None, device: Any = None) -> int | None:
    """The signal any rank received (all ranks must stop at the same step, or the next collective hangs):
    one tiny all-reduce per step under torchrun/deepspeed, nothing in a single process."""
    import torch

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return signum
    flag = torch.tensor([signum or 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None


def stop_and_exit(signals: StopSignals, step: int, checkpoint: str | Path) -> None:
    """Say where the run stopped and how to continue it, and exit 143 (SIGTERM) or 130 (SIGINT)."""
    finish_distributed()
    if is_main_process():
        print(f"stopped by {signals.name} after step {step}; checkpoint saved in {checkpoint}; "
              "resume with --resume_from_checkpoint true", file=sys.stderr, flush=True)  # fmt: skip
    raise SystemExit(signals.exit_code)


def _barrier() -> None:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def checkpoint_manifest_callback(
    output_dir: str | Path, resumed_from: str | Path | None = None, start: ResumePoint | None = None
) -> Any:
    """A Trainer callback that writes `checkpoint_manifest.json` as the last step of every checkpoint save.

    The Trainer calls on_save after `_save_checkpoint` has written the weights (or adapter), optimizer.pt,
    scheduler.pt, rng_state.pth and trainer_state.json (transformers 5.2x, `Trainer._maybe_log_save_evaluate`).
    Every rank waits until all have written their part (rng_state_N, ZeRO shards); then the main process
    hashes the folder and only then rotates: the callback takes `save_total_limit` over from the Trainer,
    whose rotation ran before the manifest existed (with a limit of 1 it deleted the one complete checkpoint
    while the new one was still unconfirmed) and ordered folders by mtime, non-numeric ones included
    (`rotate_checkpoints` deletes only this run's finished checkpoints). The manifest also carries the loss total of the
    logged steps so far (`loss_sum`, `loss_steps`), carried over from the checkpoint a run resumed from, from
    which `whole_run_metrics` computes the whole run's mean loss. `pending` names the checkpoint being saved.
    """
    from transformers import TrainerCallback

    class CheckpointManifest(TrainerCallback):
        def __init__(self) -> None:
            self.run_id: str | None = None
            self.keep: int | None = None
            self.pending: Path | None = None
            self.loss_sum, self.loss_steps, self._last_logged = 0.0, 0, 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.run_id = ensure_run_id(output_dir, resumed_from)
            before = start or ResumePoint.of(resumed_from)
            self.loss_sum, self.loss_steps = before.loss_sum, before.loss_steps
            self._last_logged = state.global_step
            self.keep, args.save_total_limit = args.save_total_limit, None  # rotation is ours, after the manifest

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and state.global_step > self._last_logged:
                steps = state.global_step - self._last_logged  # the Trainer logs the mean over these steps
                self.loss_sum += float(logs["loss"]) * steps
                self.loss_steps += steps
                self._last_logged = state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            self.pending = (
                Path(args.output_dir) / f"checkpoint-{state.global_step}" if control.should_save else None
            )

        on_epoch_end = on_step_end

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            _barrier()
            if args.should_save:
                totals = {"loss_sum": self.loss_sum, "loss_steps": self.loss_steps}
                write_checkpoint_manifest(folder, self.run_id, state.global_step, totals)
                rotate_checkpoints(Path(args.output_dir), self.run_id, self.keep)
            self.pending = None

    return CheckpointManifest()


def signal_stop_callback() -> Any:
    """A Trainer callback: after SIGTERM/SIGINT, the step in progress finishes, a checkpoint is saved (with
    its manifest; evaluation due at that step is skipped) and train() returns. `stopped_at_step` and
    `checkpoint` then say where; the handlers from before are back after training."""
    from transformers import TrainerCallback

    class SignalStop(TrainerCallback):
        def __init__(self) -> None:
            self.signals = StopSignals()
            self.stopped_at_step: int | None = None
            self.checkpoint: Path | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.signals.install()

        def on_step_end(self, args, state, control, **kwargs):
            if not self.signals.requested_on_any_rank(args.device) or self.stopped_at_step is not None:
                return
            control.should_save = control.should_training_stop = control.should_log = True
            # A pre-emption notice leaves seconds, not an evaluation's minutes.
            control.should_evaluate = False
            self.stopped_at_step = state.global_step
            self.checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            logger.warning("%s: saving %s and stopping", self.signals.name, self.checkpoint)

        def on_train_end(self, args, state, control, **kwargs):
            self.signals.restore()
            if self.signals.requested and self.stopped_at_step is None:
                logger.warning("%s arrived after the last step: the run finishes normally", self.signals.name)

    return SignalStop()


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """What a resumed session starts from, read from its checkpoint before training (rotation may delete that
    checkpoint before the run ends): the step, the tokens seen, and the logged loss total and its steps."""

    step: int = 0
    tokens: int = 0
    loss_sum: float = 0.0
    loss_steps: int = 0

    @classmethod
    def of(cls, resumed_from: str | Path | None) -> ResumePoint:
        if not resumed_from:
            return cls()
        manifest = read_checkpoint_manifest(Path(resumed_from)) or {}
        trainer_state = json.loads((Path(resumed_from) / "trainer_state.json").read_text())
        return cls(trainer_state["global_step"], trainer_state.get("num_input_tokens_seen", 0),
                   float(manifest.get("loss_sum", 0.0)), int(manifest.get("loss_steps", 0)))  # fmt: skip


def whole_run_metrics(state: Any, start: ResumePoint, metrics: dict[str, Any]) -> dict[str, Any]:
    """Totals over every session of a resumed run, from the Trainer's final `state`, where this session started
    (`start`: the checkpoint resumed from) and this session's `metrics` (train() covers only the steps since
    the resume):

    - train_loss_whole_run: the step-weighted mean of the checkpoint's logged loss total (its manifest's
      `loss_sum` / `loss_steps`, itself carried over every earlier resume) and this session's train_loss.
      Steps between the checkpoint's last log and its save never reached a log and are left out (none when
      save_steps is a multiple of logging_steps; a SIGTERM stop logs before it saves).
    - train_steps_whole_run: the final global step.
    - num_input_tokens_seen_whole_run / _this_session: the Trainer's token count (when it counts tokens)."""
    start_step, start_tokens, before_sum, before_steps = start.step, start.tokens, start.loss_sum, start.loss_steps
    session_steps = state.global_step - start_step
    result: dict[str, Any] = {"train_steps_whole_run": state.global_step}
    session_sum = metrics.get("train_loss", 0.0) * session_steps if session_steps > 0 else 0.0
    if before_steps + max(session_steps, 0) > 0:
        result["train_loss_whole_run"] = (before_sum + session_sum) / (before_steps + max(session_steps, 0))
    if state.num_input_tokens_seen:
        result["num_input_tokens_seen_whole_run"] = state.num_input_tokens_seen
        result["num_input_tokens_seen_this_session"] = state.num_input_tokens_seen - start_tokens
    return result


def resume_zero_state_on(trainer: Any, checkpoint: Path) -> None:
    """Resume a ZeRO checkpoint saved by another number of processes: DeepSpeed's own shards fit only the
    process count that wrote them, so the main process converts them to the universal format (every rank
    waits) and the engine is told to load that (`checkpoint.load_universal`, read when train() builds it)."""
    saved = zero_checkpoint_world_size(checkpoint)
    if saved is None or saved == trainer.args.world_size:
        return
    if trainer.args.should_save:
        logger.info("%s was saved by %d processes, this run has %d: converting its ZeRO state to DeepSpeed's "
                    "universal checkpoint", checkpoint, saved, trainer.args.world_size)  # fmt: skip
        convert_to_universal_checkpoint(checkpoint)
    _barrier()
    trainer.accelerator.state.deepspeed_plugin.deepspeed_config.setdefault("checkpoint", {})["load_universal"] = True


class TrainerRunGuard:
    """What a Trainer-based script adds to its run: `callbacks` for the Trainer (step timer, signal stop,
    checkpoint manifest), `train(trainer)` in place of `trainer.train(...)`, `record_train_metrics(...)`."""

    def __init__(self, output_dir: str | Path, checkpoint: str | Path | None) -> None:
        self.output_dir, self.checkpoint = Path(output_dir), checkpoint
        self.start = ResumePoint.of(checkpoint)
        self.stop = signal_stop_callback()
        self.manifest = checkpoint_manifest_callback(output_dir, checkpoint, self.start)
        self.step_timer = step_timer_callback()
        # the stop before the manifest: its should_save reaches the manifest's pending
        self.callbacks = [self.step_timer, self.stop, self.manifest]

    def train(self, trainer: Any) -> Any:
        """trainer.train from the resolved checkpoint. A failed write becomes one RunError; after SIGTERM or
        SIGINT the saved checkpoint is named and the process exits 143 / 130 (no final save or evaluation)."""
        import torch

        # Trainable weights train in fp32 in every stage (mixed precision autocasts their matmuls). TRL casts a
        # QLoRA adapter, a reward model's head with it, to bf16, and PEFT leaves a head copy (modules_to_save)
        # in the frozen trunk's half precision: small updates round away there, fp16 gradients stop the fp16
        # grad scaler, and on CPU a bf16 head meets fp32 activations.
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
        if trainer.args.fsdp and not trainer.is_fsdp_enabled:
            # accelerate 1.15 (state.py, AcceleratorState.__init__) keeps an FSDP plugin only for GPU-type process
            # groups (CUDA, XPU, NPU, ...): on CPU (gloo) it drops it without a word and trains plain DDP.
            raise RunError("fsdp_config is set, but accelerate did not turn FSDP on for this run (it shards only on "
                           "GPU-type devices; here it would have trained unsharded, as plain DDP); nothing was trained")  # fmt: skip
        if trainer.is_deepspeed_enabled and self.checkpoint:
            resume_zero_state_on(trainer, Path(self.checkpoint))
        # DeepSpeed and torch's distributed checkpoint (FSDP2) unpickle their own files: restricted while we train.
        engine_loading = contextlib.nullcontext()
        if trainer.is_deepspeed_enabled:
            engine_loading = deepspeed_loads_weights_only()
        elif trainer.is_fsdp_enabled:
            engine_loading = distributed_checkpoint_metadata_restricted()
        try:
            with engine_loading:
                result = trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint else None)
        except pickle.UnpicklingError as err:
            # The Trainer reads checkpoint state with torch.load(weights_only=True): anything but tensors and
            # plain containers is refused there, never executed. Say so in one line.
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RunError(f"refusing to resume from {self.checkpoint}: a file there holds more than tensors and "
                           f"plain values ({first_line}); nothing in a run folder is executed") from None  # fmt: skip
        except Exception as err:
            pending = self.manifest.pending
            converted = save_error(err, pending or self.output_dir, saving=pending is not None)
            if converted is None:
                raise
            raise converted from err
        if self.stop.stopped_at_step is not None:
            stop_and_exit(self.stop.signals, self.stop.stopped_at_step, self.stop.checkpoint)
        if trainer.is_fsdp_enabled:
            # Checkpoints stay sharded (torch distributed checkpoints, which a resume on another GPU count
            # reshards); the Trainer's save_model writes nothing under SHARDED_STATE_DICT, so the finished model is
            # gathered whole (the usual recipe around the Trainer; run on two H200s: tests/gpu/fsdp2_checks.py).
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        return result

    def record_train_metrics(self, trainer: Any, train_result: Any) -> dict[str, Any]:
        """train() metrics with the whole run's totals across resumes, this session's speed and the peak GPU
        memory; logged, written to train_results.json / all_results.json, and returned."""
        metrics = dict(train_result.metrics)
        metrics |= whole_run_metrics(trainer.state, self.start, metrics)
        metrics |= throughput_metrics(metrics.get("num_input_tokens_seen_this_session", 0), metrics["train_runtime"],
                                      self.step_timer.durations)  # fmt: skip
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        return metrics


def throughput_metrics(session_tokens: int, runtime: float, step_seconds: Sequence[float]) -> dict[str, float]:
    """Speed and memory of this session: the median and first optimizer step's time (compilation shows in the
    first), real (non-padding) tokens per second over the session and over the median step where the Trainer
    counts tokens (`session_tokens`: this session's count; a resume counts only its own), and peak GPU memory."""
    import statistics

    import torch

    metrics: dict[str, float] = {}
    if step_seconds:
        median = statistics.median(step_seconds)
        metrics |= {"train_step_seconds_median": median, "train_first_step_seconds": step_seconds[0]}
        if session_tokens:
            metrics["train_tokens_per_second_median_step"] = session_tokens / len(step_seconds) / median
    if session_tokens:
        metrics |= {"train_real_tokens": session_tokens,
                    "train_tokens_per_second": session_tokens / max(runtime, 1e-9)}  # fmt: skip
    if torch.cuda.is_available():
        metrics["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return metrics


def start_trainer_run(
    output_dir: Path,
    resolved: dict[str, Any],
    config_name: str,
    data_files: list[str],
    run: Any,
    checkpoint: Path | None,
    model_paths: Sequence[str | None],
) -> TrainerRunGuard:
    """Steps 2-4 of the lifecycle for a Trainer stage, in order, once the Trainer's arguments exist (they set up
    the process group): every rank has checked output_dir, so rank 0 may now write the run record; W&B is set
    up (`run`: the RunSettings group); the returned guard brings the manifest and stop-signal callbacks."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # a slower rank must not find rank 0's record and take it for a run
    write_run_record(output_dir, resolved, config_name, data_files, run.seed, checkpoint=checkpoint,
                     model_paths=model_paths)  # fmt: skip
    setup_wandb(run.report_to, run.wandb_project, run.run_name or output_dir.name)
    return TrainerRunGuard(output_dir, checkpoint)
