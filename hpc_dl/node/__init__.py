"""What runs on the compute node around the training, apart from the login-node code:

    jobscript.py   the job wrapper (run_script under submitit): signals, the time-limit warning, requeue of
                   this array task alone, the exit record; the local sequencer of a sweep
    report.py      the reporting API of your own script (`from hpc_dl import report`)
    checks.py      what `hpcdl doctor` checks on the node (`python -m hpc_dl.node.checks`)

The training processes themselves are hpc_dl/train/ and the entrypoints in jobs/.
"""
