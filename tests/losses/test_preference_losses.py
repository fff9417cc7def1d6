"""Hand-computed values for the preference losses. Reference numbers:
-log sigmoid(1) = log(1 + e^-1) = 0.3132617,  -log sigmoid(-1) = log(1 + e) = 1.3132617,  log 2 = 0.6931472.
"""

import math

import pytest
import torch

from rlhfkit.losses.preference import (
    LOSS_TYPES,
    bradley_terry_loss,
    hinge_loss,
    ipo_loss,
    preference_loss,
    robust_loss,
    sigmoid_loss,
)

SP_POS = math.log1p(math.exp(-1.0))  # -log sigmoid(1)  = 0.3132617
SP_NEG = math.log1p(math.exp(1.0))  # -log sigmoid(-1) = 1.3132617


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def test_sigmoid_loss_by_hand():
    # beta * (chosen - rejected) = 0.1 * (10 - 0) = 1  ->  -log sigmoid(1) = 0.31326
    loss = sigmoid_loss(torch.tensor([10.0]), torch.tensor([0.0]), beta=0.1)
    torch.testing.assert_close(loss, torch.tensor([0.31326]), atol=1e-5, rtol=0)
    # h = 0 -> log 2; h = -1 -> log(1 + e)
    close(sigmoid_loss(torch.tensor([3.0, 0.0]), torch.tensor([3.0, 10.0]), beta=0.1), [math.log(2), SP_NEG])


def test_cdpo_label_smoothing_by_hand():
    # h = 1, eps = 0.1: 0.9 * 0.3132617 + 0.1 * 1.3132617 = 0.4132617
    loss = sigmoid_loss(torch.tensor([10.0]), torch.tensor([0.0]), beta=0.1, label_smoothing=0.1)
    close(loss, [0.9 * SP_POS + 0.1 * SP_NEG])
    torch.testing.assert_close(loss, torch.tensor([0.4132617]), atol=1e-6, rtol=0)
    # eps = 0.5: the label carries no information -> the loss is symmetric in h
    h = torch.tensor([2.0, -2.0])
    sym = sigmoid_loss(h, torch.zeros(2), beta=1.0, label_smoothing=0.5)
    close(sym, [0.5 * (math.log1p(math.exp(-2)) + math.log1p(math.exp(2)))] * 2)


def test_cdpo_is_finite_minimum_not_at_infinity():
    # cDPO with eps > 0 is minimised at sigmoid(h) = 1 - eps, i.e. h* = log((1 - eps) / eps), not h -> inf
    eps = 0.1
    h = torch.tensor([math.log(0.9 / 0.1)], requires_grad=True)
    sigmoid_loss(h, torch.zeros(1), beta=1.0, label_smoothing=eps).sum().backward()
    assert abs(h.grad.item()) < 1e-6


def test_robust_loss_by_hand():
    # h = 1, eps = 0.1: (0.9 * 0.3132617 - 0.1 * 1.3132617) / 0.8 = 0.1882617
    loss = robust_loss(torch.tensor([10.0]), torch.tensor([0.0]), beta=0.1, label_smoothing=0.1)
    close(loss, [(0.9 * SP_POS - 0.1 * SP_NEG) / 0.8])
    torch.testing.assert_close(loss, torch.tensor([0.1882617]), atol=1e-6, rtol=0)


def test_robust_loss_eps_zero_is_dpo_and_unbiased_under_flips():
    c, r = torch.tensor([3.0, -2.0, 40.0]), torch.tensor([1.0, 5.0, -3.0])
    torch.testing.assert_close(robust_loss(c, r, beta=0.2), sigmoid_loss(c, r, beta=0.2))
    # the rDPO property: averaged over a label flip with probability eps, the loss equals clean DPO
    eps = 0.3
    expected = (1 - eps) * robust_loss(c, r, 0.2, eps) + eps * robust_loss(r, c, 0.2, eps)
    torch.testing.assert_close(expected, sigmoid_loss(c, r, beta=0.2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("eps", [-0.1, 0.5, 0.7])
def test_robust_loss_rejects_flip_rate_outside_range(eps):
    with pytest.raises(ValueError, match="0.5"):
        robust_loss(torch.zeros(1), torch.zeros(1), beta=0.1, label_smoothing=eps)


def test_ipo_loss_by_hand():
    # beta = 0.5 -> target margin 1 / (2 * 0.5) = 1; h = 3 -> (3 - 1)^2 = 4; h = 1 -> 0; h = -1 -> 4
    loss = ipo_loss(torch.tensor([3.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), beta=0.5)
    close(loss, [4.0, 0.0, 4.0])
    # beta = 0.1 -> target 5; h = 0 -> 25
    close(ipo_loss(torch.zeros(1), torch.zeros(1), beta=0.1), [25.0])


def test_hinge_loss_by_hand():
    # relu(1 - 0.1 * h): h = 5 -> 0.5, h = 10 -> 0, h = 20 -> 0, h = -10 -> 2
    loss = hinge_loss(torch.tensor([5.0, 10.0, 20.0, 0.0]), torch.tensor([0.0, 0.0, 0.0, 10.0]), beta=0.1)
    close(loss, [0.5, 0.0, 0.0, 2.0])


def test_bradley_terry_by_hand():
    # equal rewards -> log 2; r_c - r_r = 1 -> 0.3132617; r_c - r_r = -1 -> 1.3132617
    loss = bradley_terry_loss(torch.tensor([2.0, 3.0, 0.0]), torch.tensor([2.0, 2.0, 1.0]))
    close(loss, [math.log(2), SP_POS, SP_NEG])


def test_bradley_terry_margin_shifts_the_difference():
    # equal rewards with margin 1 -> -log sigmoid(-1); difference 1 with margin 1 -> log 2
    loss = bradley_terry_loss(torch.tensor([2.0, 3.0]), torch.tensor([2.0, 2.0]), margin=torch.tensor([1.0, 1.0]))
    close(loss, [SP_NEG, math.log(2)])
    # a scalar margin broadcasts; margin 0 is the plain loss
    torch.testing.assert_close(
        bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), margin=torch.tensor(0.0)),
        bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0])),
    )


def test_gradients_finite_and_saturated_for_large_logits():
    c = torch.tensor([1e4, -1e4, 3e4], requires_grad=True)
    r = torch.zeros(3)
    for fn in (
        lambda: sigmoid_loss(c, r, beta=1.0),
        lambda: sigmoid_loss(c, r, beta=1.0, label_smoothing=0.1),
        lambda: robust_loss(c, r, beta=1.0, label_smoothing=0.1),
        lambda: hinge_loss(c, r, beta=1.0),
        lambda: bradley_terry_loss(c, r, margin=torch.tensor(1.0)),
    ):
        c.grad = None
        loss = fn()
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(c.grad).all()
    # -log sigmoid(h) ~ -h for h -> -inf: value 1e4 (not inf), gradient -1 (not nan)
    c.grad = None
    loss = sigmoid_loss(c, r, beta=1.0)
    loss.sum().backward()
    close(loss, [0.0, 1e4, 0.0], atol=1e-3)
    close(c.grad, [0.0, -1.0, 0.0])


# ---- preference_loss: the entry point used by the trainer ----

# policy chosen -5 vs ref -15 -> chosen log-ratio 10; rejected -10 vs -10 -> 0
INPUTS = dict(
    policy_chosen_logps=torch.tensor([-5.0]),
    policy_rejected_logps=torch.tensor([-10.0]),
    ref_chosen_logps=torch.tensor([-15.0]),
    ref_rejected_logps=torch.tensor([-10.0]),
)


def test_preference_loss_sigmoid_and_rewards():
    losses, chosen_rewards, rejected_rewards = preference_loss(**INPUTS, loss_type="sigmoid", beta=0.1)
    close(losses, [SP_POS])
    close(chosen_rewards, [1.0])  # beta * (logp - ref_logp) = 0.1 * 10
    close(rejected_rewards, [0.0])


def test_preference_loss_dispatches_each_loss_type():
    c, r = torch.tensor([10.0]), torch.tensor([0.0])
    expected = {
        "sigmoid": sigmoid_loss(c, r, 0.1),
        "robust": robust_loss(c, r, 0.1),
        "hinge": hinge_loss(c, r, 0.1),  # relu(1 - 1) = 0
        "ipo": ipo_loss(c / 4, r / 2, 0.1),  # lengths 4 and 2: (2.5 - 5)^2 = 6.25
    }
    assert set(LOSS_TYPES) == set(expected)
    for loss_type, want in expected.items():
        lengths = dict(chosen_lengths=torch.tensor([4]), rejected_lengths=torch.tensor([2]))
        losses, _, _ = preference_loss(**INPUTS, loss_type=loss_type, beta=0.1, **lengths)
        torch.testing.assert_close(losses, want)
    close(expected["ipo"], [6.25])


def test_preference_loss_ipo_divides_by_lengths_and_clamps_zero():
    # chosen log-ratio 10 over 5 tokens = 2; rejected 0 over 0 tokens (clamped to 1) = 0; beta 0.5 -> (2 - 1)^2 = 1
    losses, chosen_rewards, _ = preference_loss(
        **INPUTS, loss_type="ipo", beta=0.5, chosen_lengths=torch.tensor([5]), rejected_lengths=torch.tensor([0])
    )
    close(losses, [1.0])
    close(chosen_rewards, [5.0])  # rewards use the summed log-ratio: 0.5 * 10


def test_preference_loss_label_smoothing_routes_to_cdpo_and_robust():
    losses, _, _ = preference_loss(**INPUTS, loss_type="sigmoid", beta=0.1, label_smoothing=0.1)
    close(losses, [0.9 * SP_POS + 0.1 * SP_NEG])
    losses, _, _ = preference_loss(**INPUTS, loss_type="robust", beta=0.1, label_smoothing=0.1)
    close(losses, [(0.9 * SP_POS - 0.1 * SP_NEG) / 0.8])


def test_preference_loss_gradient_reaches_policy_only_and_rewards_are_detached():
    pc = torch.tensor([-5.0, -3.0], requires_grad=True)
    pr = torch.tensor([-10.0, -1.0], requires_grad=True)
    rc = torch.tensor([-15.0, -3.0], requires_grad=True)
    losses, chosen_rewards, rejected_rewards = preference_loss(
        pc, pr, rc.detach(), torch.tensor([-10.0, -1.0]), loss_type="sigmoid", beta=0.1
    )
    assert losses.shape == (2,) and not chosen_rewards.requires_grad and not rejected_rewards.requires_grad
    losses.sum().backward()
    # d/dpc -log sigmoid(beta h) = -beta * sigmoid(-beta h); h = [10, 0] -> -0.1 * [0.2689414, 0.5]
    close(pc.grad, [-0.1 * (1 / (1 + math.e)), -0.05])
    close(pr.grad, [0.1 * (1 / (1 + math.e)), 0.05])
    assert rc.grad is None


def test_preference_loss_errors():
    with pytest.raises(ValueError, match="sigmoid, robust, ipo, hinge"):
        preference_loss(**INPUTS, loss_type="dpo", beta=0.1)
    with pytest.raises(ValueError, match="chosen_lengths"):
        preference_loss(**INPUTS, loss_type="ipo", beta=0.1)
    with pytest.raises(ValueError, match="no effect"):
        preference_loss(**INPUTS, loss_type="hinge", beta=0.1, label_smoothing=0.1)


def test_chosen_nll_by_hand():
    from rlhfkit.losses.preference import chosen_nll

    torch.testing.assert_close(chosen_nll(torch.tensor([-6.0, -3.0]), torch.tensor([3, 1])), torch.tensor([2.0, 3.0]))


def test_rpo_adds_alpha_times_the_chosen_nll():
    """dpo_losses with rpo_alpha: the sigmoid loss of each pair plus alpha * (-log pi(chosen) / chosen tokens)."""
    from types import SimpleNamespace

    from rlhfkit.config import DPOConfig
    from rlhfkit.trainers.dpo import dpo_losses

    policy = torch.tensor([-4.0, -9.0, -6.0, -5.0])      # chosen (2), then rejected (2): summed log-probs
    ref = torch.tensor([-5.0, -9.0, -5.0, -5.0])
    batch = SimpleNamespace(seq_lengths=torch.tensor([2, 3, 4, 4]))
    plain, m0 = dpo_losses(policy, ref, batch, DPOConfig(beta=1.0))
    # pair 1: h = (-4 + 5) - (-6 + 5) = 2 -> -log sigmoid(2) = 0.126928; pair 2: h = 0 -> log 2
    torch.testing.assert_close(plain, torch.tensor([0.126928, 0.693147]), atol=1e-6, rtol=0)
    rpo, m = dpo_losses(policy, ref, batch, DPOConfig(beta=1.0, rpo_alpha=0.5))
    torch.testing.assert_close(rpo, plain + 0.5 * torch.tensor([4.0 / 2, 9.0 / 3]))
    assert m["nll/chosen"] == pytest.approx(2.5) and m0["nll/chosen"] == pytest.approx(2.5)
