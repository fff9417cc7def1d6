import ast
from pathlib import Path

import pytest
import torch

from rlhfkit.losses.masked import masked_mean, masked_sum, masked_var, reduce_loss

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[True, True, False], [True, False, False]])


def test_masked_sum_and_mean_by_hand():
    # True entries: 1, 2, 4 -> sum 7, mean 7/3; per row: [1+2, 4] and [1.5, 4]
    torch.testing.assert_close(masked_sum(X, M), torch.tensor(7.0))
    torch.testing.assert_close(masked_mean(X, M), torch.tensor(7.0 / 3.0))
    torch.testing.assert_close(masked_sum(X, M, dim=-1), torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(masked_mean(X, M, dim=1), torch.tensor([1.5, 4.0]))
    # per column: [1+4, 2, 0] over counts [2, 1, 0 -> 1]
    torch.testing.assert_close(masked_mean(X, M, dim=0), torch.tensor([2.5, 2.0, 0.0]))


def test_masked_out_nan_and_inf_do_not_leak():
    x = torch.tensor([[1.0, float("nan"), float("inf")]])
    m = torch.tensor([[True, False, False]])
    torch.testing.assert_close(masked_sum(x, m), torch.tensor(1.0))
    torch.testing.assert_close(masked_mean(x, m, dim=-1), torch.tensor([1.0]))


def test_masked_mean_of_empty_mask_is_zero():
    torch.testing.assert_close(masked_mean(X, torch.zeros_like(M)), torch.tensor(0.0))


def test_masked_var_by_hand():
    # values 1, 2, 3, 4 (the 100 is masked out): mean 2.5, squared deviations sum 5 -> 5/3 unbiased, 5/4 biased
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 100.0]])
    m = torch.tensor([[True, True, False], [True, True, False]])
    torch.testing.assert_close(masked_var(x, m), torch.tensor(5.0 / 3.0))
    torch.testing.assert_close(masked_var(x, m, unbiased=False), torch.tensor(1.25))


def test_masked_var_needs_enough_entries():
    one = torch.tensor([True, False])
    torch.testing.assert_close(masked_var(torch.tensor([3.0, 9.0]), one, unbiased=False), torch.tensor(0.0))
    with pytest.raises(ValueError, match="at least 2"):
        masked_var(torch.tensor([3.0, 9.0]), one)


def test_reduce_loss_token_mean_vs_seq_mean():
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # token_mean: (1 + 2 + 3 + 4) / 4 = 2.5; seq_mean: mean(2, 4) = 3
    torch.testing.assert_close(reduce_loss(X, mask, mode="token_mean"), torch.tensor(2.5))
    torch.testing.assert_close(reduce_loss(X, mask, mode="seq_mean"), torch.tensor(3.0))
    # a sequence with no counted token contributes 0 and still counts: mean(2, 0) = 1
    empty_row = torch.tensor([[True, True, True], [False, False, False]])
    torch.testing.assert_close(reduce_loss(X, empty_row, mode="seq_mean"), torch.tensor(1.0))


def test_reduce_loss_gradient_weights():
    x = X.clone().requires_grad_(True)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    reduce_loss(x, mask, mode="seq_mean").backward()
    # each sequence weighs 1/2, spread over its tokens: row 0 -> 1/6 each, row 1 -> 1/2 on its one token
    torch.testing.assert_close(x.grad, torch.tensor([[1 / 6, 1 / 6, 1 / 6], [0.5, 0.0, 0.0]]))


def test_reduce_loss_rejects_unknown_mode():
    with pytest.raises(ValueError, match="token_mean, seq_mean"):
        reduce_loss(X, M, mode="sum")


def test_loss_and_logprob_modules_import_only_torch():
    src = Path(__file__).parents[2] / "src" / "rlhfkit"
    files = sorted((src / "losses").glob("*.py")) + [src / "models" / "kernels" / "logprobs.py"]
    assert len(files) >= 3
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]} if node.level == 0 else {"rlhfkit"}
            else:
                continue
            allowed = {"torch", "__future__", "typing", "math", "dataclasses", "rlhfkit"}
            assert roots <= allowed, f"{path.name} imports {roots}"
            if "rlhfkit" in roots and isinstance(node, ast.ImportFrom):
                assert (node.module or "").startswith(("rlhfkit.losses", "losses")) or node.level > 0, path.name
