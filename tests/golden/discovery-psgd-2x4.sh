#!/bin/bash
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:v100-sxm2:4
#SBATCH --job-name=hpcdl-psgd
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --partition=multigpu
#SBATCH --signal=B:USR1@300
#SBATCH --time=01:00:00

# hpcdl 0.1.0 -- run RUN-ID: strategy psgd on profile discovery
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

# ---- [launch] psgd
# 8 MPI ranks, 4 per node; under SLURM, mpirun takes the hosts from the allocation
export HPCDL_LAUNCHER=mpirun
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpirun -np 8 --map-by ppr:4:node --bind-to none --oversubscribe \
  -x OMP_NUM_THREADS -x PYTHONUNBUFFERED -x HPCDL_RUN_DIR -x HPCDL_LAUNCHER \
  python -m hpc_dl.jobs.psgd --run-dir /scratch/hpcdl/runs/golden/RUN-ID --model mnist-cnn --dataset fashion-mnist --epochs 1 --batch-size 64 --lr 0.01 --seed 0 --precision fp32
