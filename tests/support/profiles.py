"""Hypothesis profiles, for the tests and the SIP e2e tests alike.

Property tests draw the same examples on every run (CI must not fail by
chance); run them with `pytest --hypothesis-profile=explore` to draw new ones.
"""

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile("repeatable")
