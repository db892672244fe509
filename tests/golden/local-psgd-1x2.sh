#!/bin/bash
#SBATCH --cpus-per-task=1
#SBATCH --job-name=hpcdl-psgd
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --time=01:00:00

# hpcdl 0.1.0 -- run RUN-ID: strategy psgd on profile local
# 1 node(s) x 2 worker(s) per node = 2 workers (a worker is a GPU, or a CPU process on a node without GPUs)
set -euo pipefail

# ---- [environment] modules, software environment, variables
export OMP_NUM_THREADS=1
export HPCDL_RUN_DIR=/scratch/hpcdl/runs/golden/RUN-ID
export PYTHONUNBUFFERED=1

# ---- [launch] psgd
# 2 MPI ranks, 2 per node; under SLURM, mpirun takes the hosts from the allocation
export HPCDL_LAUNCHER=mpirun
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpirun -np 2 --map-by ppr:2:node --bind-to none --oversubscribe \
  -x OMP_NUM_THREADS -x PYTHONUNBUFFERED -x HPCDL_RUN_DIR -x HPCDL_LAUNCHER \
  /opt/venv/bin/python -m hpc_dl.jobs.psgd --run-dir /scratch/hpcdl/runs/golden/RUN-ID --model mnist-cnn --dataset fashion-mnist --epochs 1 --batch-size 64 --lr 0.01 --seed 0 --precision fp32 --average every:10
