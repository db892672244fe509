"""DistributedDataParallel worker, launched by torchrun (one process per GPU, or per CPU worker)."""

from __future__ import annotations

from torch.nn.parallel import DistributedDataParallel as DDP

from hpc_dl.train.config import config_from, parser
from hpc_dl.train.env import DistEnv
from hpc_dl.train.loop import Trainer, run_main
from hpc_dl.train.setup import setup, sgd


def main(argv: list[str] | None = None) -> int:
    cfg = config_from(parser("ddp").parse_args(argv))
    env = DistEnv.from_environ()
    env.init_process_group()

    def body(events):
        s = setup(cfg, env)
        ddp = DDP(s.model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        Trainer(cfg, env, events, "ddp", ddp, sgd(ddp.parameters(), cfg), s.train, s.sampler, s.test).train()

    return run_main("ddp", cfg, env, body)


if __name__ == "__main__":
    raise SystemExit(main())
