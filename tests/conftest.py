"""Test-wide settings: hypothesis draws the same examples on every run, so a
failure found once is found again (and CI never flakes on a new draw)."""

from hypothesis import settings

settings.register_profile("edgeperf", derandomize=True, deadline=None)
settings.load_profile("edgeperf")
