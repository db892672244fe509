"""Logs -> tidy DataFrames -> scaling tables and figures (installed as hpc_dl.analysis).

load.py reads run folders, scaling.py turns DataFrames into DataFrames, plots.py DataFrames into
figures, collect.py puts them together and writes the files.
"""
