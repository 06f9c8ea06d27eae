"""Crop, normalisation, resize and burden of one slice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.preprocess import (
    EmptyMyocardiumError,
    PreprocessConfig,
    preprocess_slice,
    scar_burden_percent,
    square_crop_box,
)
from bench.errors import ConfigError, DataError


def ring_slice(shape=(128, 128), centre=(64, 64), radii=(20, 30), seed=0):
    """Return an image, a myocardium ring and a scar covering its right quarter."""
    rows, columns = np.indices(shape)
    distance = np.hypot(rows - centre[0], columns - centre[1])
    myocardium = (distance >= radii[0]) & (distance <= radii[1])
    scar = myocardium & (columns > centre[1] + radii[0])
    image = np.random.default_rng(seed).normal(100.0, 10.0, shape)
    image[scar] += 200.0
    return image, myocardium, scar


def test_output_shapes_and_dtypes():
    image, myocardium, scar = ring_slice()

    result = preprocess_slice(image, myocardium, scar, config=PreprocessConfig(size=64))

    assert result.image.shape == (64, 64)
    assert result.image.dtype == np.float32
    assert result.myocardium.dtype == np.bool_
    assert result.scar.dtype == np.bool_


def test_outside_myocardium_zero():
    image, myocardium, scar = ring_slice()

    masked = preprocess_slice(image, myocardium, scar)
    unmasked = preprocess_slice(
        image, myocardium, scar, config=PreprocessConfig(mask_outside=False)
    )

    assert np.all(masked.image[~masked.myocardium] == 0.0)
    assert np.any(unmasked.image[~unmasked.myocardium] != 0.0)


def test_percentile_normalisation_range():
    image, myocardium, scar = ring_slice()

    result = preprocess_slice(image, myocardium, scar, config=PreprocessConfig(mask_outside=False))

    assert result.image.min() >= 0.0
    assert result.image.max() <= 1.0
    assert result.image[result.scar].mean() > result.image[result.myocardium & ~result.scar].mean()


def test_zscore_normalisation():
    image, myocardium, scar = ring_slice(shape=(64, 64), centre=(32, 32), radii=(10, 15))

    result = preprocess_slice(
        image,
        myocardium,
        scar,
        config=PreprocessConfig(normalization="zscore", margin=0.0, size=32),
    )

    values = result.image[result.myocardium]
    assert abs(float(values.mean())) < 0.3
    assert 0.7 < float(values.std()) < 1.3


def test_crop_box_square_with_margin():
    myocardium = np.zeros((100, 100), bool)
    myocardium[10:30, 40:80] = True

    top, left, side = square_crop_box(myocardium, margin=0.1)

    assert side == 48
    assert (top, left) == (-4, 36)


def test_crop_beyond_border_is_padded():
    image, myocardium, scar = ring_slice(shape=(64, 64), centre=(30, 8), radii=(4, 7))

    result = preprocess_slice(image, myocardium, scar, config=PreprocessConfig(size=32, margin=0.5))

    assert result.myocardium.any()
    assert result.image.shape == (32, 32)


def test_burden_native_and_resized():
    image, myocardium, scar = ring_slice()

    result = preprocess_slice(image, myocardium, scar)

    expected = 100.0 * scar.sum() / myocardium.sum()
    assert result.burden_native_percent == pytest.approx(expected)
    assert result.burden_resized_percent == pytest.approx(expected, abs=3.0)
    assert result.burden_resized_percent == pytest.approx(
        100.0 * result.scar.sum() / result.myocardium.sum()
    )


def test_scar_outside_myocardium_dropped():
    image, myocardium, scar = ring_slice()
    leaking = scar.copy()
    leaking[60:68, 60:68] = True

    result = preprocess_slice(image, myocardium, leaking)

    assert not np.any(result.scar & ~result.myocardium)
    assert result.burden_native_percent == pytest.approx(100.0 * scar.sum() / myocardium.sum())


def test_spacing_after_resize():
    image, myocardium, scar = ring_slice()
    side = square_crop_box(myocardium, 0.1)[2]

    result = preprocess_slice(image, myocardium, scar, spacing_mm=(1.5, 1.5))
    unknown = preprocess_slice(image, myocardium, scar)

    assert result.spacing_mm == pytest.approx(1.5 * side / 64)
    assert np.isnan(unknown.spacing_mm)


def test_empty_myocardium_raises():
    image = np.ones((32, 32))
    empty = np.zeros((32, 32), bool)

    with pytest.raises(EmptyMyocardiumError, match="case 'p1_s3'.*empty"):
        preprocess_slice(image, empty, empty, case_id="p1_s3")


def test_shape_mismatch_raises():
    image, myocardium, scar = ring_slice()

    with pytest.raises(DataError, match="one shape"):
        preprocess_slice(image, myocardium[:-1], scar)


def test_extra_masks_resized():
    image, myocardium, scar = ring_slice()
    left_half = np.indices(myocardium.shape)[1] < 64
    rater = myocardium & left_half

    result = preprocess_slice(image, myocardium, scar, extra_masks={"scar_rater2": rater})

    assert result.extra_masks["scar_rater2"].shape == (64, 64)
    assert result.extra_masks["scar_rater2"].any()
    assert not np.any(result.extra_masks["scar_rater2"] & result.scar)


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(8, 80),
    height=st.integers(1, 60),
    width=st.integers(1, 60),
    seed=st.integers(0, 1000),
)
def test_resized_masks_never_invent_values(size, height, width, seed):
    rng = np.random.default_rng(seed)
    myocardium = np.zeros((70, 70), bool)
    myocardium[5 : 5 + height, 5 : 5 + width] = rng.random((height, width)) < 0.7
    myocardium[5, 5] = True
    scar = myocardium & (rng.random((70, 70)) < 0.3)
    image = rng.random((70, 70))

    try:
        result = preprocess_slice(
            image, myocardium, scar, config=PreprocessConfig(size=size, margin=0.0)
        )
    except EmptyMyocardiumError:
        # A thin myocardium can fall between the sampled pixel centres; that is reported, not hidden.
        assert size < max(height, width)
        return

    assert result.myocardium.dtype == np.bool_
    assert not np.any(result.scar & ~result.myocardium)
    assert 0.0 <= result.burden_resized_percent <= 100.0


def test_scar_burden_counts_in_int64():
    myocardium = np.ones((300, 300), bool)
    scar = np.zeros((300, 300), bool)
    scar[:150] = True

    assert scar_burden_percent(myocardium, scar) == pytest.approx(50.0)
    assert np.isnan(scar_burden_percent(np.zeros((3, 3), bool), scar[:3, :3]))


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"size": 4}, "size"),
        ({"margin": -0.1}, "margin"),
        ({"normalization": "hist"}, "unknown normalization"),
        ({"percentiles": (99, 1)}, "percentiles"),
        ({"sise": 64}, "did you mean 'size'"),
    ],
)
def test_config_rejects_invalid(settings_, message):
    with pytest.raises(ConfigError, match=message):
        PreprocessConfig.from_dict(settings_)


def test_config_round_trip():
    config = PreprocessConfig(size=96, percentiles=(2, 98))

    assert PreprocessConfig.from_dict(config.to_dict()) == config
    assert config.replace(margin=0.2).margin == 0.2
