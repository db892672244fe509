"""One small entrypoint per strategy (installed as hpc_dl.jobs). They share hpc_dl.train."""
