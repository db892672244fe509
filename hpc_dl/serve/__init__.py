"""Serve a trained run: predict.py loads its checkpoint and answers top-5 (plain, testable), page.py is the
Streamlit page `hpcdl serve` starts on top of it."""
