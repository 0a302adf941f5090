"""The C part of the package; everything else is declared in pyproject.toml.

screening/_native.c is optional: where it cannot be compiled (no C compiler
or Python headers), install goes on and screening/index/compact.py and
screening/domain/numbers.py serve the same answers in Python.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("screening._native", ["screening/_native.c"], optional=True)])
