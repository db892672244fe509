#!/bin/bash
#SBATCH --account='proj; id'
#SBATCH --cpus-per-task=16
#SBATCH --exclusive
#SBATCH --gres=gpu:a100:4
#SBATCH --job-name=hpcdl-ddp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --partition=multigpu
#SBATCH --signal=B:USR1@300
#SBATCH --time=12:00:00

# hpcdl 0.1.0 -- run RUN-ID: strategy ddp on profile discovery
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

# ---- [launch] ddp
export HPCDL_LAUNCHER=torchrun
# one torchrun per node (srun), c10d rendezvous on the first host, port derived from the job id
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
rdzv_port=$(( 20000 + SLURM_JOB_ID % 20000 ))
srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 \
  python -m torch.distributed.run \
    --nnodes=2 --nproc-per-node=4 \
    --rdzv-backend=c10d --rdzv-endpoint="${head_node}:${rdzv_port}" --rdzv-id="$SLURM_JOB_ID" \
    -m hpc_dl.jobs.ddp --run-dir /scratch/hpcdl/runs/golden/RUN-ID --model resnet50 --dataset imagefolder --data-root /scratch/asl --epochs 1 --batch-size 64 --lr 0.01 --seed 0 --precision fp16
