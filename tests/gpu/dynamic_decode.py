"""Experiment launcher: run a script with the generation engine's growing (dynamic) batch instead of the static,
compiled one it picks on a GPU, so that a benchmark can time both in one device call.

    python3 tests/gpu/dynamic_decode.py scripts/train_ppo.py ...
"""

import functools
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common.generation import HFEngine  # noqa: E402

HFEngine.__init__ = functools.partialmethod(HFEngine.__init__, decode="dynamic")
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
