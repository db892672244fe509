"""Report your own script's numbers to hpcdl: `from hpc_dl import report` (see hpc_dl/node/report.py, where
the code lives with the rest of what runs on the compute node). This name is the documented import; it is
the very same module object, so its state is one."""

import sys

from .node import report as _report

sys.modules[__name__] = _report
