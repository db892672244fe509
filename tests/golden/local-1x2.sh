#!/bin/bash
#SBATCH --cpus-per-task=2
#SBATCH --job-name=hpcdl-ddp
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00

# hpcdl 0.1.0 -- run RUN-ID: strategy ddp on profile local
# 1 node(s) x 2 worker(s) per node = 2 workers (a worker is a GPU, or a CPU process on a node without GPUs)
set -euo pipefail

# ---- [environment] modules, software environment, variables
export OMP_NUM_THREADS=1
export HPCDL_RUN_DIR=/scratch/hpcdl/runs/golden/RUN-ID
export PYTHONUNBUFFERED=1

# ---- [launch] ddp
export HPCDL_LAUNCHER=torchrun
/opt/venv/bin/python -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 \
  -m hpc_dl.jobs.ddp --run-dir /scratch/hpcdl/runs/golden/RUN-ID --model mnist-cnn --dataset fashion-mnist --train-samples 4096 --epochs 3 --batch-size 64 --lr 0.01 --seed 0 --precision fp32
