"""The training package every entrypoint in jobs/ shares: config, env, data, models, events, loop.

Runs on compute nodes; imports torch. Nothing on the login-node path (cli, spec, render, submit)
imports it.
"""
