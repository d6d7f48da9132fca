"""Run a training script under torchrun with FSDP2 on a CPU (gloo) process group, for the CPU tests of FSDP2.

accelerate 1.15 keeps an FSDP plugin only for GPU-type process groups (AcceleratorState.__init__: the FSDP
branch sits inside the CUDA/XPU/... branch; a gloo run is MULTI_CPU), while torch's fully_shard itself runs on
CPU over gloo. This wrapper turns a MULTI_CPU state that was given an FSDP plugin into an FSDP one, as accelerate
does on GPUs; the script and everything else run unchanged. (AcceleratorState is set up more than once in a run,
so the plugin is kept and applied each time.) The same runs on two GPUs: tests/gpu/fsdp2_checks.py.

    torchrun --nproc_per_node=2 tests/fsdp_on_cpu.py scripts/finetune.py ARGS...
"""

import runpy
import sys
from pathlib import Path

import accelerate.state
from accelerate.utils import DistributedType

accelerate_state_init = accelerate.state.AcceleratorState.__init__
given_plugin = []


def init_keeping_fsdp_on_cpu(self, *args, **kwargs):
    accelerate_state_init(self, *args, **kwargs)
    if kwargs.get("fsdp_plugin") is not None:
        given_plugin[:] = [kwargs["fsdp_plugin"]]
    if given_plugin and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        if self._mixed_precision != "no":
            given_plugin[0].set_mixed_precision(self._mixed_precision)
        self.fsdp_plugin = given_plugin[0]


accelerate.state.AcceleratorState.__init__ = init_keeping_fsdp_on_cpu
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
