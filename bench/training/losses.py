"""The scar loss: weighted soft Dice inside the myocardium plus a focal term.

Example:
    >>> import torch
    >>> from bench.training.losses import ScarLoss
    >>> loss = ScarLoss(w_fg=0.8, w_bg=0.2)
    >>> logits = torch.zeros(2, 1, 64, 64, requires_grad=True)
    >>> scar = torch.zeros(2, 1, 64, 64, dtype=torch.bool)
    >>> myocardium = torch.ones(2, 1, 64, 64, dtype=torch.bool)
    >>> value = loss(logits, scar, myocardium)
    >>> value.backward()

The loss of one slice is ``L = L_wDice + beta * L_focal`` with

* ``L_wDice = 1 - (w_fg * Dice_fg + w_bg * Dice_bg)``. Both soft Dice terms
  sum only over pixels inside the myocardium mask ``M``: ``Dice_fg`` compares
  the scar probability ``P`` with the scar mask ``Y``, and ``Dice_bg`` compares
  ``1 - P`` with ``1 - Y``. Each is ``(2 * sum(A * B) + eps) / (sum(A) + sum(B) + eps)``.
* ``L_focal``, the mean over all pixels of the slice of
  ``-alpha_t * (1 - p_t) ** gamma * log(p_t)`` (Lin et al. 2017, "Focal Loss for
  Dense Object Detection"), where ``p_t`` is the probability of the true class
  and ``alpha_t`` is ``alpha`` on scar pixels and ``1 - alpha`` elsewhere.

Dice is computed per slice, as MONAI's ``DiceLoss`` does with ``batch=False``.
For a slice without scar, ``Dice_fg`` is close to 0 unless the predicted scar
probabilities inside ``M`` sum to about ``eps``, so such a slice's loss stays
near ``w_fg`` while its ``Dice_fg`` gradient is close to 0. The background
Dice and the focal term are what push its prediction to zero.

The focal term is computed from logits through ``binary_cross_entropy_with_logits``
and ``expm1``, so logits of ±100 give finite values and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import DataError

__all__ = ["ScarLoss", "soft_dice"]


class ScarLoss(nn.Module):
    """Weighted soft Dice (inside the myocardium) plus ``beta`` times the focal loss.

    Args:
        w_fg: weight of the scar Dice ``Dice_fg``.
        w_bg: weight of the background Dice ``Dice_bg``.
        alpha: focal weight of scar pixels; background pixels get ``1 - alpha``.
        beta: weight of the focal term.
        gamma: focal focusing exponent; 0 gives alpha-weighted cross-entropy.
        epsilon: smoothing added to the numerator and denominator of each Dice.
    """

    def __init__(
        self,
        w_fg: float,
        w_bg: float,
        alpha: float = 0.25,
        beta: float = 0.5,
        gamma: float = 2.0,
        epsilon: float = 1e-6,
    ) -> None:
        super().__init__()
        self.w_fg = float(w_fg)
        self.w_bg = float(w_bg)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)

    def forward(
        self, logits: torch.Tensor, scar: torch.Tensor, myocardium: torch.Tensor
    ) -> torch.Tensor:
        """Return the batch mean of the per-slice losses (a scalar)."""
        return self.per_sample(logits, scar, myocardium).mean()

    def per_sample(
        self, logits: torch.Tensor, scar: torch.Tensor, myocardium: torch.Tensor
    ) -> torch.Tensor:
        """Return the loss of each slice, shape ``(N,)``.

        Args:
            logits: ``(N, 1, H, W)`` scar logits.
            scar: ``(N, 1, H, W)`` reference scar mask ``Y`` (bool or 0/1).
            myocardium: ``(N, 1, H, W)`` myocardium mask ``M`` (bool or 0/1).

        Raises:
            DataError: the three tensors do not share one ``(N, 1, H, W)`` shape.
        """
        _check_shapes(logits, scar, myocardium)
        logits = logits.float()
        target = scar.to(logits.dtype)
        inside = myocardium.to(logits.dtype)

        weighted_dice = self.weighted_dice_loss(torch.sigmoid(logits), target, inside)
        focal = self.focal_loss(logits, target)
        return weighted_dice + self.beta * focal

    def weighted_dice_loss(
        self, probability: torch.Tensor, target: torch.Tensor, inside: torch.Tensor
    ) -> torch.Tensor:
        """Return ``1 - (w_fg * Dice_fg + w_bg * Dice_bg)`` per slice, both inside ``M``."""
        dice_fg = soft_dice(probability, target, inside, self.epsilon)
        dice_bg = soft_dice(1.0 - probability, 1.0 - target, inside, self.epsilon)
        return 1.0 - (self.w_fg * dice_fg + self.w_bg * dice_bg)

    def focal_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the mean focal loss over the pixels of each slice."""
        cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        # 1 - p_t = 1 - exp(-CE), computed as -expm1(-CE) to keep precision near p_t = 1.
        modulating = (-torch.expm1(-cross_entropy)).pow(self.gamma)
        alpha_t = self.alpha * target + (1.0 - self.alpha) * (1.0 - target)
        return (alpha_t * modulating * cross_entropy).flatten(1).mean(dim=1)


def soft_dice(
    prediction: torch.Tensor, target: torch.Tensor, inside: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """Return the soft Dice of each slice, summed over the pixels where ``inside`` is 1.

    Args:
        prediction: ``(N, ...)`` values in [0, 1].
        target: ``(N, ...)`` values in [0, 1].
        inside: ``(N, ...)`` 0/1 mask of the pixels that count.
        epsilon: smoothing added to numerator and denominator, so an empty
            target and an all-zero prediction give a Dice of 1.
    """
    prediction = (prediction * inside).flatten(1)
    target = (target * inside).flatten(1)
    intersection = (prediction * target).sum(dim=1)
    total = prediction.sum(dim=1) + target.sum(dim=1)
    return (2.0 * intersection + epsilon) / (total + epsilon)


def _check_shapes(logits: torch.Tensor, scar: torch.Tensor, myocardium: torch.Tensor) -> None:
    shapes = {"logits": logits.shape, "scar": scar.shape, "myocardium": myocardium.shape}
    if logits.dim() != 4 or logits.shape[1] != 1 or len(set(shapes.values())) != 1:
        listed = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
        raise DataError(
            f"ScarLoss expects logits, scar and myocardium of one shape (N, 1, H, W); got {listed}"
        )
