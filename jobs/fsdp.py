"""Fully-sharded data parallel, the current way: torch's own fully_shard (FSDP2), launched by torchrun.

Every block with parameters (each top-level child of the model) is sharded across the ranks, then the
root; --precision bf16/fp16 becomes a MixedPrecisionPolicy (parameters in that type, gradients reduced
in fp32). Batch norms stay in fp32 (their running statistics are fp32 buffers, which batch_norm will not
mix with low-precision weights): each is sharded first, on its own, with an fp32 policy that casts its
input up and its output back down. Checkpoints gather the full state on rank 0 and scatter it back on
resume.
"""

from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.loop import Trainer
from hpc_dl.train.setup import setup

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class FSDPTrainer(Trainer):
    def gather_state(self):
        full = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model = get_model_state_dict(self.model, options=full)
        optim = get_optimizer_state_dict(self.model, self.optimizer, options=full)
        return {"model": model, "optimizer": optim} if self.env.is_main else None

    def restore_state(self, state):
        full = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
        set_model_state_dict(self.model, state["model"], options=full)
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=full)


def shard_norms(model: torch.nn.Module, mesh, low: torch.dtype) -> set[torch.nn.Module]:
    """Shard every batch norm on its own in fp32 (input cast up, output back to `low`); returns them."""
    fp32 = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32, output_dtype=low)
    norms = {m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    for norm in norms:
        fully_shard(norm, mesh=mesh, mp_policy=fp32, reshard_after_forward=False)
    return norms


def body(job: Job) -> None:
    s = setup(job.cfg, job.env)
    mesh = init_device_mesh(job.env.device.type, (job.env.world_size,))
    low = DTYPES[job.cfg.precision]
    policy = MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32, output_dtype=torch.float32)
    norms = shard_norms(s.model, mesh, low) if low is not None else set()
    for child in s.model.children():
        if child not in norms and any(p.requires_grad for p in child.parameters()):
            fully_shard(child, mesh=mesh, mp_policy=policy)
    fully_shard(s.model, mesh=mesh, mp_policy=policy)
    info = {"sharded_blocks": sum(1 for _ in s.model.children())}
    job.train(s, trainer=FSDPTrainer, amp=False, info=info)  # precision is the policy's, not autocast's


def main(argv: list[str] | None = None) -> int:
    return run_job("fsdp", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
