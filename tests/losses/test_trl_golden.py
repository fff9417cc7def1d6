"""Our preference losses against values computed by TRL 1.16.0's own code (scripts/make_trl_golden.py)."""

import json
from pathlib import Path

import pytest
import torch

from rlhfkit.losses.preference import LOSS_TYPES, bradley_terry_loss, preference_loss

GOLDEN = json.loads((Path(__file__).parents[1] / "assets" / "trl_golden" / "dpo_losses.json").read_text())
INPUT_KEYS = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")


def _case_id(case):
    return f"{case['loss_type']}-beta{case['beta']}-eps{case['label_smoothing']}"


def _inputs(dtype):
    data = GOLDEN["inputs"]
    logps = [torch.tensor(data[k], dtype=dtype) for k in INPUT_KEYS]
    lengths = torch.tensor(data["chosen_lengths"]), torch.tensor(data["rejected_lengths"])
    return logps, lengths


def test_golden_file_covers_every_loss_type_with_and_without_label_smoothing():
    assert GOLDEN["trl_version"] == "1.16.0"
    assert {c["loss_type"] for c in GOLDEN["cases"]} == set(LOSS_TYPES)
    assert {c["loss_type"] for c in GOLDEN["cases"] if c["label_smoothing"] > 0} == {"sigmoid", "robust"}


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=_case_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_trl(case, dtype):
    (pc, pr, rc, rr), (chosen_lengths, rejected_lengths) = _inputs(dtype)
    losses, chosen_rewards, rejected_rewards = preference_loss(
        pc,
        pr,
        rc,
        rr,
        loss_type=case["loss_type"],
        beta=case["beta"],
        label_smoothing=case["label_smoothing"],
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
    )
    # float64 matches TRL to 1e-6 absolute; float32 to 1e-6 relative (ipo losses reach ~50)
    tol = dict(atol=1e-6, rtol=0) if dtype == torch.float64 else dict(atol=1e-6, rtol=1e-6)
    for ours, key in ((losses, "losses"), (chosen_rewards, "chosen_rewards"), (rejected_rewards, "rejected_rewards")):
        torch.testing.assert_close(ours, torch.tensor(case[key], dtype=dtype), **tol, msg=key)


@pytest.mark.parametrize("key,use_margin", [("losses_no_margin", False), ("losses_margin", True)])
def test_bradley_terry_matches_trl_reward_trainer(key, use_margin):
    bt = GOLDEN["bradley_terry"]
    chosen, rejected = torch.tensor(bt["chosen_rewards"]), torch.tensor(bt["rejected_rewards"])
    margin = torch.tensor(bt["margin"]) if use_margin else None
    torch.testing.assert_close(
        bradley_terry_loss(chosen.double(), rejected.double(), None if margin is None else margin.double()),
        torch.tensor(bt[key], dtype=torch.float64),
        atol=1e-6,
        rtol=0,
    )
