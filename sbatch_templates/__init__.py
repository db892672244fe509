"""The Jinja templates of job scripts (installed as hpc_dl.sbatch_templates). See base.sh.j2."""
