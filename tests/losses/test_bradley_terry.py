"""Bradley-Terry reward-model loss by hand."""
import math

import torch

from rlhfkit.losses.preference import bradley_terry_loss


def test_equal_rewards_give_log_2():
    loss = bradley_terry_loss(torch.tensor([0.3, -2.0]), torch.tensor([0.3, -2.0]))
    torch.testing.assert_close(loss, torch.full((2,), math.log(2.0)))


def test_margin_shifts_the_difference():
    # r_c - r_r - m = 1 - 0 - 1 = 0 -> log 2;   2 - 0 - 0 -> -log sigmoid(2) = log(1 + e^-2) = 0.126928
    loss = bradley_terry_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]), margin=torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(loss, torch.tensor([math.log(2.0), math.log1p(math.exp(-2.0))]))


def test_wrong_order_costs_more():
    right = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]))
    wrong = bradley_terry_loss(torch.tensor([0.0]), torch.tensor([1.0]))
    torch.testing.assert_close(right, torch.tensor([math.log1p(math.exp(-1.0))]))
    torch.testing.assert_close(wrong, torch.tensor([math.log1p(math.exp(1.0))]))


def test_centering_term():
    # (1 + 1)^2 * 0.01 = 0.04 added to log 2
    loss = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([1.0]), center_coefficient=0.01)
    torch.testing.assert_close(loss, torch.tensor([math.log(2.0) + 0.04]))
