"""Do the nanopillar grids steer axon growth? Grid, axon directions, claims, summary, plots.

Importing the package registers conf/analyze.yaml's schema (settings.py) with Hydra, so any
caller that composes the analyze config gets its checks.
"""

from neuroseg.analysis import settings  # noqa: F401
