"""Shared fixtures: the embedded tiny models, built once by the project's own script."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Tests never reach the hub or W&B servers, whatever the calling shell has set.
os.environ.update(
    HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false"
)


def run_script(*args: str, cwd: Path = REPO, env: dict | None = None, check: bool = True, timeout: int = 600):
    """Run a command as a user would, from the repo root; on failure show its output."""
    result = subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{without_warnings(result.stderr)[-6000:]}"
        )
    return result


def without_warnings(stderr: str) -> str:
    """stderr less Python's warning lines (each with its source line): DeepSpeed's ZeRO-3 prints two for every
    collective, and they pushed a rank's abort message out of the failure report CI keeps."""
    kept, skip_source = [], False
    for line in stderr.splitlines():
        if re.search(r"\w+Warning: ", line):
            skip_source = True
            continue
        if skip_source and line.startswith("  "):
            continue
        skip_source = False
        kept.append(line)
    return "\n".join(kept)


def signal_when(command: list[str], ready: Callable[[], bool], signum: int, timeout: float = 300,
                ) -> tuple[int, str]:  # fmt: skip
    """Run `command` from the repo root and send it `signum` the moment `ready()` holds (polled every 10 ms).
    Returns its exit status and stderr (kept in a file while it runs, so a chatty run never blocks on a pipe)."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        deadline = time.monotonic() + timeout
        while not ready() and process.poll() is None:
            assert time.monotonic() < deadline, "the run never reached the point to signal it"
            time.sleep(0.01)
        process.send_signal(signum)
        code = process.wait(timeout=timeout)
        stderr.seek(0)
        return code, stderr.read()


def kill_when(command: list[str], marker: Path, timeout: float = 300) -> int:
    """SIGKILL `command` the moment `marker` exists (a node lost, the OOM killer): nothing of the process
    runs after that. Returns its exit status (-9)."""
    return signal_when(command, marker.is_file, signal.SIGKILL, timeout)[0]


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """models/ with the tiny Llama and Bloom; the build script skips what is already built."""
    run_script(PYTHON, "scripts/build_tiny_models.py", "--archs", "llama,bloom")
    return REPO / "models"


@pytest.fixture(scope="session")
def tiny_llama(tiny_models: Path) -> Path:
    return tiny_models / "tiny-llama"


@pytest.fixture(scope="session")
def tiny_bloom(tiny_models: Path) -> Path:
    return tiny_models / "tiny-bloom"


@pytest.fixture(scope="session")
def tiny_lora_adapter(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on every linear layer of the tiny Llama, with random lora_B so it really changes
    the model (a fresh adapter is a no-op: lora_B starts at zero). No tokenizer: the base's is used."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("tiny-lora")
    torch.manual_seed(0)  # lora_A is initialised from the global generator: the same adapter every session
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(path)
    return path
