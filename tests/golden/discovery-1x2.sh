#!/bin/bash
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:v100-sxm2:2
#SBATCH --job-name='"; rm -rf ~; echo '"'"'$(id)'
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --partition=multigpu
#SBATCH --signal=B:USR1@300
#SBATCH --time=01:00:00

# hpcdl 0.1.0 -- run RUN-ID: strategy ddp on profile discovery
# 1 node(s) x 2 worker(s) per node = 2 workers (a worker is a GPU, or a CPU process on a node without GPUs)
set -euo pipefail

# ---- [environment] modules, software environment, variables
module load cuda/12.1
module load anaconda3/2022.05
source activate hpcdl
export NCCL_DEBUG=WARN
export OMP_NUM_THREADS=4
export HPCDL_RUN_DIR=/scratch/hpcdl/runs/golden/RUN-ID
export PYTHONUNBUFFERED=1

# ---- [launch] ddp
export HPCDL_LAUNCHER=torchrun
python -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 \
  -m hpc_dl.jobs.ddp --run-dir /scratch/hpcdl/runs/golden/RUN-ID --model resnet18 --dataset cifar10 --data-root '/scratch/$USER/cifar 10' --epochs 5 --batch-size 64 --lr 0.01 --seed 0 --precision fp32
