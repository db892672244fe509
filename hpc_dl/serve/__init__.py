"""Serve a trained run: predict.py checks and loads its checkpoint as its task serves it (plain, testable),
page.py is the Streamlit page `hpcdl serve` starts on top of it, launch.py the command lines."""
