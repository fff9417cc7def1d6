"""A tiny reward model saved as `rlhfkit rm train` saves one: a one-label Llama sequence classifier with the
training statistics in its config (built directly, no training: the judge only needs a fixed scorer)."""
from __future__ import annotations

from pathlib import Path


def save_tiny_rm(path: Path, tokenizer, seed: int = 0, trained: bool = True) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rlhfkit.models.load import REWARD_INFO_KEY

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, num_labels=1,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id)
    model = LlamaForSequenceClassification(cfg).eval()
    with torch.no_grad():
        model.score.weight.mul_(50.0)  # rewards a few units apart, so confidences are not all ~0.5
    if trained:
        setattr(model.config, REWARD_INFO_KEY, {"mean": 0.1, "std": 2.0, "responses": 10, "use_chat_template": True,
                                                "max_length": 128, "max_prompt_length": 64})
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
