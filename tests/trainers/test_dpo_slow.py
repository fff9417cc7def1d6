"""The default model, LoRA, one epoch on the bundled customer-support data: held-out preference accuracy."""
import pytest

from rlhfkit.config import DPOConfig, build_config
from rlhfkit.trainers import dpo
from rlhfkit.trainers.loop import read_metrics


@pytest.mark.slow
def test_default_model_lora_learns_support_preferences(tmp_path):
    cfg = build_config(DPOConfig, data="bundled:support", output=str(tmp_path / "dpo"), lora=True,
                       eval_fraction=0.15, num_epochs=1, learning_rate=5e-5, beta=0.1, batch_size=8,
                       max_length=256, max_prompt_length=128, warmup_ratio=0.1, save_steps=0, progress=False)
    final = dpo.train_dpo(cfg)
    rows = read_metrics(tmp_path / "dpo")
    ev = [r for r in rows if "eval/rewards/accuracies" in r][-1]
    assert ev["eval/rewards/accuracies"] >= 0.8, ev
    assert ev["eval/rewards/margins"] > 0
    assert (final / "adapter" / "adapter_config.json").is_file() and (final / "config.json").is_file()
