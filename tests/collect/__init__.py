"""Tests of `rlhfkit collect` (a package so that its conftest.py is `collect.conftest`, see conftest.py)."""
