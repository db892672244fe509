# hpcdl — everything a fresh machine needs is installed from here.
#   make scaling-study   venv + install + a real small DDP study (1 and 2 workers) + table and plots
#   make test            venv + install + the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv is (re)installed only when these inputs change: their hash names the stamp.
VENV_INPUTS := requirements.txt setup.cfg setup.py pyproject.toml
VENV_HASH := $(shell cat $(VENV_INPUTS) | sha256sum | cut -c1-16)
VENV_STAMP := $(VENV)/.hpcdl-venv-$(VENV_HASH)
# Debian packages: what a study needs (the offline Fashion-MNIST data set, OpenMPI for mpirun/mpi4py, cmake
# and g++ for Horovod's build), and what only the browser tests need (tests/test_browser.py drives
# /usr/bin/chromium through playwright; no `playwright install`): ~120 MB of downloads and a desktop stack.
STUDY_PACKAGES := dataset-fashion-mnist openmpi-bin libopenmpi-dev cmake g++
BROWSER_PACKAGES := chromium chromium-driver
# Horovod (optional extra): built once per machine and cached by a hash of everything that goes into it.
HOROVOD_VERSION := 0.28.1
HOROVOD_CACHE ?= $(HOME)/.cache/hpcdl/wheels
HOROVOD_HASH = $(shell (echo $(HOROVOD_VERSION); cat .ci/cxx-std20; $(PY) -c 'import sys, torch; print(sys.version, torch.__version__)'; g++ --version | head -1) | sha256sum | cut -c1-16)
HOROVOD_ENV := CXX=$(CURDIR)/.ci/cxx-std20 CUDA_HOME=/usr/local/cuda HOROVOD_CUDA_HOME=/usr/local/cuda \
  HOROVOD_BUILD_CUDA_CC_LIST=75 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
  HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 MAKEFLAGS=-j2

STUDY ?= scaling-study
RUNS_DIR ?= runs
RESULTS_DIR ?= results
# make scaling-study runs on SLURM when a cluster answers (sinfo), with this profile; else on this machine
SLURM_PROFILE ?= $(or $(HPCDL_PROFILE),discovery)
STUDY_FLAGS := --strategy ddp,fsdp,pipeline,horovod,psgd,dp,hogwild --skip-invalid --nodes 1 --gpus 1,2 \
  --model mnist-cnn --dataset fashion-mnist --train-samples 4096 --test-samples 1024 --epochs 3 --batch-size 64

# Two recipes at once (the venv beside apt, Horovod's build beside the test cluster's start); the targets'
# prerequisites keep the order that matters, and apt calls queue on one lock.
MAKEFLAGS += --jobs=2

.PHONY: help venv system system-browser horovod cluster cluster-down scaling-study test test-full test-fast lint bench clean

help:
	@echo "make scaling-study   every strategy with 1 and 2 workers, for real, then the table and plots in $(RESULTS_DIR)/"
	@echo "make test            install everything the tests need, then run the suite"
	@echo "make lint            ruff"
	@echo "make bench           the benchmark harnesses in bench/ (figures go to BENCHMARKS.md by hand)"

venv: $(VENV_STAMP)

$(VENV_STAMP): $(VENV_INPUTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.hpcdl-venv-*
	@touch $@

# Checked every time (dpkg answers in milliseconds), installed only when missing. Every apt call of this
# Makefile and of tests/cluster/slurm.sh holds one lock (APT_LOCK), so the parallel targets queue for apt.
APT_LOCK := /tmp/hpcdl-apt.lock
define apt_install
	@flock $(APT_LOCK) bash -c 'dpkg -s $(1) >/dev/null 2>&1 && exit 0; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(1)'
endef

system:
	$(call apt_install,$(STUDY_PACKAGES))

# the study's packages and the browser's, in one apt call
system-browser:
	$(call apt_install,$(STUDY_PACKAGES) $(BROWSER_PACKAGES))

# A sweep: one job array (the points in turn on this machine), then collect into $(RESULTS_DIR)/.
# Horovod's build (the long step) starts as soon as its two inputs are there: the venv's torch and the
# compilers and MPI of `system`, which install side by side (MAKEFLAGS' two jobs).
scaling-study: system venv horovod
	@rm -rf $(RUNS_DIR)/$(STUDY)
	@if command -v sinfo >/dev/null 2>&1 && timeout 5 sinfo -h >/dev/null 2>&1; then \
	  echo "SLURM answers: sweeping on profile $(SLURM_PROFILE)"; profile=$(SLURM_PROFILE); \
	else \
	  echo "no SLURM here: sweeping on this machine (profile local)"; profile=local; \
	fi; \
	$(VENV)/bin/hpcdl sweep --profile $$profile --study $(STUDY) --runs-dir $(RUNS_DIR) --out $(RESULTS_DIR) \
	  $(STUDY_FLAGS) --wait
	@cat $(RESULTS_DIR)/scaling.md

# Horovod against the venv's torch: the wheel is built once (~3 min on 2 cores) into $(HOROVOD_CACHE)/<hash>/.
# Started beside the venv's second half (once torch is in), it was no faster: both are CPU-bound (BENCHMARKS.md).
horovod: venv system
	@if $(PY) -c 'import horovod.torch' 2>/dev/null; then exit 0; fi; \
	dir=$(HOROVOD_CACHE)/$(HOROVOD_HASH); \
	if ! ls $$dir/horovod-*.whl >/dev/null 2>&1; then \
	  echo "building Horovod $(HOROVOD_VERSION) into $$dir (once per machine, ~6 min)"; \
	  $(PY) -m pip install -q packaging wheel cloudpickle psutil pyyaml cffi && \
	  mkdir -p $$dir.tmp && \
	  $(HOROVOD_ENV) $(PY) -m pip wheel -q --no-build-isolation --no-deps --no-binary horovod \
	    horovod==$(HOROVOD_VERSION) -w $$dir.tmp > $$dir.tmp/build.log 2>&1 \
	    || { tail -30 $$dir.tmp/build.log; exit 1; }; \
	  rm -rf $$dir && mv $$dir.tmp $$dir; \
	fi; \
	$(PY) -m pip install -q --no-deps $$dir/horovod-*.whl && $(PY) -m pip install -q cloudpickle psutil pyyaml cffi

# The tests' real SLURM: munge, MariaDB, slurmdbd, slurmctld, two slurmd (reused when running).
cluster:
	@if [ "$$(id -u)" = 0 ]; then tests/cluster/slurm.sh up; \
	else echo "not root: no test SLURM cluster here, its tests will be skipped"; fi

cluster-down:
	tests/cluster/slurm.sh down

# Two pytest workers (pytest-xdist): the tests on the test SLURM in turn on one of them, while their jobs wait
# on the scheduler the other worker trains; then the real trainings, then the rest (tests/conftest.py).
PYTEST := $(PY) -m pytest -q -ra -n $(or $(PYTEST_WORKERS),2) --dist loadgroup --no-loadscope-reorder

# Two jobs at once: the venv installs while apt does, then Horovod builds while the test cluster starts.
test: venv system-browser horovod cluster
	$(PYTEST) -m "not full"

test-full: venv system-browser horovod cluster
	$(PYTEST)

test-fast: venv
	$(PYTEST) -m "not slow"

lint: venv
	$(VENV)/bin/ruff check hpc_dl jobs analysis tests bench
	$(VENV)/bin/ruff format --check hpc_dl jobs analysis tests bench

bench: venv system
	$(PY) bench/bench_cli.py
	$(PY) bench/bench_ddp.py
	$(PY) bench/bench_strategies.py
	$(PY) bench/bench_language.py
	@if [ "$$(id -u)" = 0 ]; then tests/cluster/slurm.sh up && $(PY) bench/bench_slurm.py; fi

clean:
	rm -rf $(RUNS_DIR) $(RESULTS_DIR) .pytest_cache
