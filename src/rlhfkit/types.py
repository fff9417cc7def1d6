"""Shared dataclasses. Shapes are written on every tensor field."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    from torch import Tensor

# A prompt or response is either plain text or a list of chat messages {"role", "content"}.
Message = dict
Text = Union[str, list]


@dataclass
class PreferenceExample:
    """One preference pair, whatever form it was read from.

    prompt:   str, or list of {"role", "content"} messages (conversational form)
    chosen:   str, or list of assistant messages (usually one)
    rejected: same type as chosen
    id:       optional identifier kept from the record
    source:   optional provenance (file, judge id, annotator)
    margin:   optional strength of the preference (used by the reward model's loss)
    line:     1-based line (JSONL) or record index the example came from, for error messages
    """

    prompt: Text
    chosen: Text
    rejected: Text
    id: Optional[str] = None
    source: Optional[str] = None
    margin: Optional[float] = None
    line: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        for k in ("id", "source", "margin"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


@dataclass
class PPOModels:
    """The four models of PPO, named once (docs/ppo.md has a glossary: actor = policy, critic = value,
    ref_policy / initial model = reference).

    policy:    trainable causal LM that generates (maybe PEFT-wrapped)
    reference: frozen causal LM, the KL anchor; the policy itself when `reference_is_policy_without_adapter`
    reward:    frozen reward model scoring whole responses; None with a reward function; the value model itself
               when `reward_is_value_without_adapter`
    value:     trainable reward-model architecture giving per-token values (initialised from the reward model)
    """

    policy: Any
    reference: Any
    reward: Any
    value: Any
    reference_is_policy_without_adapter: bool = False
    reward_is_value_without_adapter: bool = False


@dataclass
class Rollout:
    """One PPO rollout batch after steps 1-3 of an update: B responses, T = the longest response. Positions past a
    response's end hold 0 (False in the mask).

    prompts:       B prompts as read (text or messages), for reward functions and samples.jsonl
    prompt_ids:    B lists of prompt token ids
    response_ids:  B lists of response token ids, up to and including the first EOS (or cut at the cap)
    texts:         B decoded responses
    ended:         (B,) bool, True when the response emitted EOS
    response_mask: (B, T) bool, True on real response tokens (a prefix of each row)
    logprobs:      (B, T) fp32 policy log-probs of the sampled tokens at sampling time (the "old" log-probs)
    entropy:       (B, T) fp32 entropy (nats) of the sampling distribution at each step
    ref_logprobs:  (B, T) fp32 reference log-probs of the same tokens
    values:        (B, T) fp32 value estimates before the update (the "old" values)
    scores:        (B,) fp32 score of each response (reward model or function, EOS penalty included)
    kl:            (B, T) fp32 per-token KL estimate to the reference (0 off the mask)
    non_score:     (B, T) fp32 the KL part of the per-token reward, -kl_coef * kl
    advantages:    (B, T) fp32 GAE advantages, whitened
    returns:       (B, T) fp32 value targets: advantages (before whitening) + values
    """

    prompts: list
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    texts: list[str]
    ended: Tensor
    response_mask: Tensor
    logprobs: Tensor
    entropy: Tensor
    ref_logprobs: Tensor
    values: Tensor
    scores: Tensor
    kl: Tensor
    non_score: Tensor
    advantages: Tensor
    returns: Tensor

    @property
    def lengths(self) -> Tensor:
        """(B,) response lengths in tokens."""
        return self.response_mask.long().sum(-1)

