#!/bin/bash
#SBATCH --cpus-per-task=16
#SBATCH --gres=gpu:v100-sxm2:4
#SBATCH --job-name=hpcdl-horovod
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --partition=multigpu
#SBATCH --time=01:00:00

# hpcdl 0.1.0 -- run RUN-ID: strategy horovod on profile discovery
# 2 node(s) x 4 worker(s) per node = 8 workers (a worker is a GPU, or a CPU process on a node without GPUs)
set -euo pipefail

# ---- [environment] modules, software environment, variables
module load cuda/12.1
module load anaconda3/2022.05
source activate hpcdl
export NCCL_DEBUG=WARN
export OMP_NUM_THREADS=4
export HPCDL_RUN_DIR=/scratch/hpcdl/runs/golden/RUN-ID
export PYTHONUNBUFFERED=1

# ---- [launch] horovod
# 4 slots on every host of the allocation (horovodrun reaches the other hosts over ssh)
hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/:4/' | paste -sd, -)
horovodrun -np 8 -H "$hosts" --gloo \
  python -m hpc_dl.jobs.horovod --run-dir /scratch/hpcdl/runs/golden/RUN-ID --model mnist-cnn --dataset fashion-mnist --epochs 1 --batch-size 64 --lr 0.01 --seed 0 --precision fp32 --compression fp16 --backward-passes 2
