"""Every shipped config loads into its stage's config class and validates."""
from pathlib import Path

import pytest

from rlhfkit.config import DPOConfig, PPOConfig, RewardConfig, SFTConfig, build_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLASSES = {"dpo": DPOConfig, "rm": RewardConfig, "sft": SFTConfig, "ppo": PPOConfig}
# what a stage's YAML cannot hold because it is the run's own: PPO's reward (a model folder or a function)
REQUIRED = {"ppo": {"reward_fn": "m:f"}}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_loads(path):
    cfg = build_config(CLASSES[path.parent.name], yaml_path=str(path), **REQUIRED.get(path.parent.name, {}))
    import yaml

    for k, v in yaml.safe_load(path.read_text()).items():
        assert getattr(cfg, k) == v, k


def test_there_are_configs_for_each_stage():
    assert {p.parent.name for p in CONFIGS.glob("*/*.yaml")} == set(CLASSES)
