"""ScarLoss against values worked out by hand on 3x3 slices, and its gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.errors import DataError
from bench.training.losses import ScarLoss

# Myocardium: the top two rows of a 3x3 slice (6 pixels); the bottom row is outside.
MYOCARDIUM = [[1, 1, 1], [1, 1, 1], [0, 0, 0]]


def as_batch(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(1, 1, 3, 3)


def logits_for(probabilities) -> torch.Tensor:
    return torch.logit(as_batch(probabilities).double()).float()


def test_no_scar_matches_hand_value():
    # p = 0.5 everywhere, no scar. Inside M: sum(p) = 3, sum(1 - p) = 3, sum(1 - y) = 6.
    # Dice_fg = eps / (3 + eps) ~ 0; Dice_bg = (2 * 3) / (3 + 6) = 2/3.
    # L_wDice = 1 - (0.8 * 0 + 0.2 * 2/3) = 0.8666667.
    # Focal per pixel: 0.75 * 0.5**2 * ln 2 = 0.1299651; L = 0.8666667 + 0.5 * 0.1299651.
    loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    value = loss(torch.zeros(1, 1, 3, 3), as_batch([[0] * 3] * 3), as_batch(MYOCARDIUM))
    assert value.item() == pytest.approx(0.9316492, rel=1e-5)


def test_all_scar_matches_hand_value():
    # p = 0.75 inside M, 0.25 outside; scar = M.
    # Dice_fg = (2 * 4.5) / (4.5 + 6) = 0.8571429; Dice_bg = eps / (1.5 + eps) ~ 0.
    # L_wDice = 1 - 0.8 * 0.8571429 = 0.3142857.
    # Focal: scar pixels 0.25 * 0.25**2 * ln(4/3) = 0.0044950 (x6),
    # outside 0.75 * 0.25**2 * ln(4/3) = 0.0134851 (x3); mean = 0.0074917.
    loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    probabilities = [[0.75] * 3, [0.75] * 3, [0.25] * 3]
    value = loss(logits_for(probabilities), as_batch(MYOCARDIUM), as_batch(MYOCARDIUM))
    assert value.item() == pytest.approx(0.3142857 + 0.5 * 0.0074917, rel=1e-5)


def test_partial_scar_matches_hand_value():
    # Scar: two pixels of the top row. p: 0.9 on scar, 0.2 and 0.1 elsewhere in M, 0.5 outside.
    # Dice_fg = (2 * 1.8) / (2.3 + 2) = 0.8372093; Dice_bg = (2 * 3.5) / (3.7 + 4) = 0.9090909.
    # L_wDice = 1 - (0.6 * 0.8372093 + 0.4 * 0.9090909) = 0.1340381.
    # Focal sum: 2 * 0.0002634 + 0.0066943 + 3 * 0.0007902 + 3 * 0.1299651 = 0.3994837.
    loss = ScarLoss(w_fg=0.6, w_bg=0.4)
    probabilities = [[0.9, 0.9, 0.2], [0.1, 0.1, 0.1], [0.5, 0.5, 0.5]]
    scar = [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    value = loss(logits_for(probabilities), as_batch(scar), as_batch(MYOCARDIUM))
    assert value.item() == pytest.approx(0.1340381 + 0.5 * 0.3994837 / 9, rel=1e-5)


def test_perfect_prediction_near_zero():
    loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    scar = as_batch([[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    logits = torch.where(scar.bool(), 100.0, -100.0)
    assert loss(logits, scar, as_batch(MYOCARDIUM)).item() == pytest.approx(0.0, abs=1e-6)


def test_outside_myocardium_ignored_by_dice():
    loss = ScarLoss(w_fg=0.7, w_bg=0.3)
    scar = as_batch([[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    myocardium = as_batch(MYOCARDIUM)
    logits = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    changed = logits.clone()
    changed[..., 2, :] = 5.0

    def dice_term(values):
        return loss.weighted_dice_loss(torch.sigmoid(values), scar, myocardium)

    assert torch.equal(dice_term(logits), dice_term(changed))
    assert not torch.equal(loss(logits, scar, myocardium), loss(changed, scar, myocardium))


def test_gamma_zero_is_weighted_cross_entropy():
    loss = ScarLoss(w_fg=0.5, w_bg=0.5, alpha=0.5, gamma=0.0)
    logits = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    scar = (torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    expected = 0.5 * F.binary_cross_entropy_with_logits(logits, scar, reduction="none")
    assert torch.allclose(loss.focal_loss(logits, scar), expected.flatten(1).mean(1))


@pytest.mark.parametrize("magnitude", [100.0, -100.0])
def test_extreme_logits_finite_gradients(magnitude):
    loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    scar = as_batch([[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    logits = torch.full((1, 1, 3, 3), magnitude, requires_grad=True)
    value = loss(logits, scar, as_batch(MYOCARDIUM))
    value.backward()
    assert math.isfinite(value.item())
    assert torch.isfinite(logits.grad).all()


def test_mixed_extreme_logits_finite_gradients():
    loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    scar = as_batch([[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    logits = (as_batch([[1, -1, 1], [-1, 1, -1], [1, -1, 1]]) * 100.0).requires_grad_()
    loss(logits, scar, as_batch(MYOCARDIUM)).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_per_sample_mean_is_forward():
    loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 1, 8, 8, generator=generator)
    scar = torch.rand(4, 1, 8, 8, generator=generator) > 0.7
    myocardium = torch.ones(4, 1, 8, 8, dtype=torch.bool)
    per_sample = loss.per_sample(logits, scar, myocardium)
    assert per_sample.shape == (4,)
    assert torch.allclose(per_sample.mean(), loss(logits, scar, myocardium))
    single = loss.per_sample(logits[1:2], scar[1:2], myocardium[1:2])
    assert torch.allclose(single, per_sample[1:2])


def test_shape_mismatch_raises_data_error():
    loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    with pytest.raises(DataError, match=r"logits \(1, 1, 3, 3\)"):
        loss(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3))
