"""hpcdl: distributed deep-learning experiments from a SLURM login node to a scaling report."""

__version__ = "0.1.0"
