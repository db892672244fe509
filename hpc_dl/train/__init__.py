"""The training package every entrypoint in jobs/ shares: entry (the jobs' preamble), config, env, setup,
data, loaders, models, loop; tasks/ holds one folder per task, each filling tasks/base.py's Task, which
setup, the jobs and the loop ask instead of testing a task's name.

Runs on compute nodes; imports torch. Nothing on the login-node path (cli, spec, render, submit)
imports it.
"""
