"""Fast paths, each beside its plain twin and a parity test (README.md in this folder has the table).

Nothing here imports the rest of rlhfkit: each module is torch (and, for attention, transformers' registry) only.
"""
