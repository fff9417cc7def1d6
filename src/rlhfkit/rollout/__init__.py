"""Generation for PPO and evaluation: batched sampling with the KV cache, stop at EOS, response masks."""
from rlhfkit.rollout.generate import Samples, load_prompts, sample, to_padded

__all__ = ["Samples", "load_prompts", "sample", "to_padded"]
