"""The job wrapper moved to hpc_dl/node/jobscript.py. This name stays for jobs queued before the move: submitit
pickled their function as hpc_dl.jobscript.run_script (or run_sequence, collect_study)."""

import sys

from .node import jobscript as _jobscript

sys.modules[__name__] = _jobscript
