"""Shared fixtures: the embedded tiny models, built once by the project's own script."""

from __future__ import annotations

import os
import subprocess
import sys
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
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


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
