"""Write tests/assets/trl_golden/dpo_losses.json: TRL 1.16.0's own loss code evaluated on fixed random inputs.

Regenerate (needs network access to PyPI once; TRL is NOT a dependency of rlhfkit):

    python3 -m venv /tmp/trlref
    /tmp/trlref/bin/pip install torch==2.13.0
    /tmp/trlref/bin/pip install trl==1.16.0
    /tmp/trlref/bin/python scripts/make_trl_golden.py          # from the repository root

How TRL's real code is called. TRL keeps the losses inside `DPOTrainer._compute_loss(self, model, inputs, ...)`,
which runs the model itself. We call that unbound method with a stand-in `self` (a SimpleNamespace holding the
attributes it reads) and a stand-in model whose output carries per-token log-probs we chose, and we pass the
reference log-probs precomputed (`precompute_ref_logps=True`). Everything between the model output and the
returned loss is TRL's code. `_compute_loss` returns the batch mean, so it is called once per pair (B=1) to get
per-pair losses; the implicit rewards are read back from the `rewards/chosen` / `rewards/rejected` metrics it logs.
The Bradley-Terry values come the same way from `RewardTrainer.compute_loss`.

TRL 1.16 subtleties recorded here:
- "sigmoid" ignores `label_smoothing` (TRL dropped cDPO from it). cDPO golden values come from TRL's "aot" loss
  called with one pair at a time: sorting a batch of one is the identity, which leaves exactly
  -(1-eps) log sigmoid(beta h) - eps log sigmoid(-beta h). The JSON records this as trl_loss_type="aot".
- "ipo" divides each side's summed log-ratio by its own number of completion tokens (`completion_mask.sum`,
  clamped to >= 1) and returns (delta - 1/(2 beta))^2.
- "robust" returns [-(1-eps) log sigmoid(beta h) + eps log sigmoid(-beta h)] / (1 - 2 eps).
- rewards are beta * (logp - ref_logp) of the summed (not length-normalised) log-ratios, for every loss type.

Inputs are float64 so that the goldens carry no float32 rounding; tests compare at 1e-6.
"""

from __future__ import annotations

import json
import types
from collections import defaultdict
from pathlib import Path

import torch
import trl
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.reward_trainer import RewardTrainer

OUT = Path(__file__).resolve().parents[1] / "tests" / "assets" / "trl_golden" / "dpo_losses.json"
SEED = 1234
NUM_PAIRS = 8
PROMPT_LEN = 3
MAX_COMPLETION = 6
DTYPE = torch.float64

# (our loss_type, beta, label_smoothing, TRL loss_type that computes it)
CASES = [
    ("sigmoid", 0.1, 0.0, "sigmoid"),
    ("sigmoid", 0.5, 0.0, "sigmoid"),
    ("sigmoid", 0.1, 0.1, "aot"),
    ("sigmoid", 0.5, 0.3, "aot"),
    ("robust", 0.1, 0.0, "robust"),
    ("robust", 0.1, 0.1, "robust"),
    ("robust", 0.5, 0.3, "robust"),
    ("ipo", 0.1, 0.0, "ipo"),
    ("ipo", 0.5, 0.0, "ipo"),
    ("hinge", 0.1, 0.0, "hinge"),
    ("hinge", 0.5, 0.0, "hinge"),
]


def _fake_self(model, loss_type: str, beta: float, label_smoothing: float) -> types.SimpleNamespace:
    """The attributes DPOTrainer._compute_loss / RewardTrainer.compute_loss read from `self`."""
    return types.SimpleNamespace(
        model=model,
        accelerator=types.SimpleNamespace(
            device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x
        ),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=label_smoothing,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        args=types.SimpleNamespace(center_rewards_coefficient=None),
    )


class _FixedLogprobModel:
    """Stands in for the policy: returns the per-token log-probs we chose (zero off the completion)."""

    training = True

    def __init__(self, log_probs: torch.Tensor):
        self.log_probs = log_probs  # (2B, T-1), shifted: position t scores token t+1

    def __call__(self, **kwargs):
        assert kwargs.get("fused_lm_head") is True
        shape = self.log_probs.shape
        return types.SimpleNamespace(
            log_probs=self.log_probs,
            entropy=torch.zeros(shape, dtype=DTYPE),
            mean_logits=torch.zeros(shape, dtype=DTYPE),
            is_top1=torch.zeros(shape, dtype=torch.bool),
        )


def _pair_batch(i: int, data: dict) -> tuple[dict, _FixedLogprobModel]:
    """One pair as TRL's batch: rows [chosen, rejected], prompt then completion, right-padded."""
    total = PROMPT_LEN + MAX_COMPLETION
    completion_mask = torch.zeros(2, total, dtype=torch.long)
    log_probs = torch.zeros(2, total - 1, dtype=DTYPE)
    for row, side in enumerate(("chosen", "rejected")):
        n = data[f"{side}_lengths"][i]
        completion_mask[row, PROMPT_LEN : PROMPT_LEN + n] = 1
        # token j is scored at shifted position j - 1
        log_probs[row, PROMPT_LEN - 1 : PROMPT_LEN - 1 + n] = data[f"policy_{side}_token_logps"][i]
    attention_mask = torch.zeros(2, total, dtype=torch.long)
    attention_mask[:, :PROMPT_LEN] = 1
    attention_mask |= completion_mask
    inputs = {
        "input_ids": torch.randint(0, 100, (2, total)),
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
        "ref_chosen_logps": torch.tensor([data["ref_chosen_logps"][i]], dtype=DTYPE),
        "ref_rejected_logps": torch.tensor([data["ref_rejected_logps"][i]], dtype=DTYPE),
    }
    return inputs, _FixedLogprobModel(log_probs)


def make_dpo_inputs(gen: torch.Generator) -> dict:
    data: dict = {"chosen_lengths": [], "rejected_lengths": []}
    for side in ("chosen", "rejected"):
        lengths = torch.randint(1, MAX_COMPLETION + 1, (NUM_PAIRS,), generator=gen).tolist()
        token_logps = [(-5.0 * torch.rand(n, generator=gen, dtype=DTYPE)) for n in lengths]
        data[f"{side}_lengths"] = lengths
        data[f"policy_{side}_token_logps"] = token_logps
        data[f"policy_{side}_logps"] = [t.sum().item() for t in token_logps]
        # the reference scores the same tokens independently, so log-ratios take both signs
        data[f"ref_{side}_logps"] = [(-5.0 * torch.rand(n, generator=gen, dtype=DTYPE)).sum().item() for n in lengths]
    return data


def run_dpo_case(data: dict, trl_loss_type: str, beta: float, label_smoothing: float) -> dict:
    losses, chosen_rewards, rejected_rewards = [], [], []
    for i in range(NUM_PAIRS):
        inputs, model = _pair_batch(i, data)
        fake = _fake_self(model, trl_loss_type, beta, label_smoothing)
        loss = DPOTrainer._compute_loss(fake, model, inputs, return_outputs=False)
        losses.append(loss.item())
        chosen_rewards.append(fake._metrics["train"]["rewards/chosen"][-1])
        rejected_rewards.append(fake._metrics["train"]["rewards/rejected"][-1])
    return {"losses": losses, "chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards}


class _FixedRewardModel:
    training = True

    def __init__(self, rewards: torch.Tensor):
        self.rewards = rewards  # (2B,) chosen then rejected

    def __call__(self, **kwargs):
        return types.SimpleNamespace(logits=self.rewards[:, None])


def run_bradley_terry(gen: torch.Generator) -> dict:
    chosen = 3.0 * torch.randn(NUM_PAIRS, generator=gen, dtype=DTYPE)
    rejected = 3.0 * torch.randn(NUM_PAIRS, generator=gen, dtype=DTYPE)
    margin = 2.0 * torch.rand(NUM_PAIRS, generator=gen, dtype=DTYPE)
    out: dict = {"chosen_rewards": chosen.tolist(), "rejected_rewards": rejected.tolist(), "margin": margin.tolist()}
    for key, use_margin in (("losses_no_margin", False), ("losses_margin", True)):
        losses = []
        for i in range(NUM_PAIRS):
            model = _FixedRewardModel(torch.stack([chosen[i], rejected[i]]))
            inputs = {"attention_mask": torch.ones(2, 4, dtype=torch.long)}
            if use_margin:
                inputs["margin"] = margin[i : i + 1]
            fake = _fake_self(model, "sigmoid", 0.0, 0.0)
            losses.append(RewardTrainer.compute_loss(fake, model, inputs).item())
        out[key] = losses
    return out


def main() -> None:
    assert trl.__version__ == "1.16.0", f"goldens are defined against TRL 1.16.0, found {trl.__version__}"
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)  # input_ids (unused by the stand-in model, drawn for a realistic batch)
    data = make_dpo_inputs(gen)
    cases = []
    for loss_type, beta, label_smoothing, trl_loss_type in CASES:
        result = run_dpo_case(data, trl_loss_type, beta, label_smoothing)
        cases.append(
            {
                "loss_type": loss_type,
                "beta": beta,
                "label_smoothing": label_smoothing,
                "trl_loss_type": trl_loss_type,
                **result,
            }
        )
    golden = {
        "generator": "scripts/make_trl_golden.py",
        "trl_version": trl.__version__,
        "torch_version": torch.__version__,
        "dtype": "float64",
        "inputs": {k: v for k, v in data.items() if not k.endswith("token_logps")},
        "cases": cases,
        "bradley_terry": run_bradley_terry(gen),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} DPO cases x {NUM_PAIRS} pairs, Bradley-Terry x {NUM_PAIRS})")


if __name__ == "__main__":
    main()
