"""The training's MS-SSIM: the reference implementation's values, per image, and finite gradients everywhere."""
from __future__ import annotations

import pytest
import torch

from neuralcodec.training.losses import MS_SSIM_WEIGHTS, msssim, msssim_per_image


def pair(n: int, side: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(n, 3, 2 * side, 2 * side, generator=g), 2)   # some structure
    return (x + noise * torch.randn(x.shape, generator=g)).clamp(0, 1), x


def test_matches_pytorch_msssim_per_image():
    import pytorch_msssim
    xhat, x = pair(4, 160, 0.05)
    w = torch.tensor(MS_SSIM_WEIGHTS)
    ref = pytorch_msssim.ms_ssim(xhat, x, data_range=1.0, size_average=False, win_size=7,
                                 weights=(w / w.sum()).tolist())
    ours = msssim_per_image(xhat, x)
    assert ours.shape == (4,)
    torch.testing.assert_close(ours, ref, rtol=0, atol=2e-6)
    torch.testing.assert_close(msssim(xhat, x), ref.mean(), rtol=0, atol=2e-6)


def test_per_image_values_order_and_identity():
    xhat, x = pair(3, 128, 0.02, seed=1)
    worse = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    each = msssim_per_image(torch.cat([x[:1], xhat, worse]), torch.cat([x[:1], x, x]))
    assert each[0] == pytest.approx(1.0, abs=1e-5)
    assert (each[4:] < each[1:4]).all() and (each[1:] < 1).all()
    for i in range(3):   # an image's value does not depend on the batch it is in
        torch.testing.assert_close(msssim_per_image(xhat[i:i + 1], x[i:i + 1])[0], each[1 + i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("side", [160, 64, 40, 20])
def test_gradients_are_finite_even_for_a_hopeless_reconstruction(side):
    # anti-correlated images make every contrast-structure term negative: floored, never NaN (windows shrink for
    # small crops, down to plain SSIM)
    _, x = pair(2, side, 0.0, seed=3)
    xhat = (1 - x).requires_grad_(True)
    value = msssim_per_image(xhat, x)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(xhat.grad).all() and (value < 0.1).all()
