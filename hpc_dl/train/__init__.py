"""The training package every entrypoint in jobs/ shares: entry (the jobs' preamble), config, env, data, models, loop.

Runs on compute nodes; imports torch. Nothing on the login-node path (cli, spec, render, submit)
imports it.
"""
