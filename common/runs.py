"""What every run writes beside its outputs, and the guards that keep a user's folder safe.

- `prepare_output_dir` refuses a folder that already holds a run unless the user asked to resume or
  overwrite; it never deletes anything.
- `write_run_record` writes the resolved config and `run_manifest.json` (command, commit and dirty
  flag, package versions, data SHA-256, seed, hardware) so a run can be read and repeated later.
- `last_complete_checkpoint` resumes from the newest checkpoint that finished saving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
TRACKED_PACKAGES = (
    "torch", "transformers", "datasets", "peft", "trl", "accelerate", "deepspeed",
    "bitsandbytes", "tokenizers", "wandb",
)  # fmt: skip
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


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


def prepare_output_dir(output_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    """Create `output_dir`, or refuse one that already holds files unless resuming or overwriting."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise RunError(f"output_dir {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (resume or overwrite):
        held = ", ".join(sorted(p.name for p in path.iterdir())[:5])
        raise RunError(
            f"output_dir {path} already holds a run ({held}, ...). Nothing was changed. "
            "Pass --resume_from_checkpoint true to continue it, --overwrite_output_dir true to write "
            "over it, or choose another --output_dir."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """Newest `checkpoint-N` whose trainer_state.json parses.

    The Trainer writes trainer_state.json last, so a checkpoint interrupted mid-save lacks it (or
    holds a truncated one) and is skipped here instead of being resumed from.
    """
    found: list[tuple[int, Path]] = []
    for child in Path(output_dir).iterdir() if Path(output_dir).is_dir() else []:
        match = CHECKPOINT_RE.match(child.name)
        if not (match and child.is_dir()):
            continue
        try:
            json.loads((child / "trainer_state.json").read_text())
        except (OSError, json.JSONDecodeError):
            logger.warning("skipping %s: it did not finish saving (no valid trainer_state.json)", child)
            continue
        found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_run_record(
    output_dir: Path, resolved_config: dict[str, Any], config_name: str, data_files: list[str], seed: int
) -> None:
    """Write `<config_name>` (the resolved config) and `run_manifest.json` into `output_dir`."""
    if not is_main_process():
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for name in (config_name, "run_manifest.json"):
        earlier = output_dir / name
        if earlier.is_file():  # a resumed run keeps the record of the invocation before it
            earlier.rename(earlier.with_name(f"{earlier.stem}.before-{stamp}{earlier.suffix}"))
    (output_dir / config_name).write_text(json.dumps(resolved_config, indent=2, ensure_ascii=False) + "\n")
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "config": resolved_config,
        "git": git_state(REPO_ROOT),  # looked up at call time, so a test can point it at another repo
        "packages": package_versions(),
        "data_files": {f: sha256_of(f) for f in data_files if Path(f).is_file()},
        "seed": seed,
        "hardware": hardware_summary(),
    }
    (output_dir / "run_manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


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


def finish_distributed() -> None:
    """Tear down the process group before the interpreter exits (torchrun, deepspeed launchers): left to
    interpreter shutdown, the C++ communicator threads can abort the process after the run has finished."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
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


def log_config_to_wandb(report_to: str, resolved_config: dict[str, Any], key: str = "resolved_config") -> None:
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
