"""Figure encoding: embedded PNGs never spell "http" and keep their pixels."""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from bench.reporting.figures import _base64_without_http


def _noise_png(seed: int) -> bytes:
    figure = Figure()
    figure.add_subplot().imshow(np.random.default_rng(seed).random((300, 300)))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": "scarbench"})
    return buffer.getvalue()


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGBA"))


def test_base64_avoids_http_and_keeps_pixels():
    png = _noise_png(seed=0)
    assert "http" in base64.b64encode(png).decode("ascii").lower()  # the case this guards against

    encoded = _base64_without_http(png)

    assert "http" not in encoded.lower()
    np.testing.assert_array_equal(_pixels(base64.b64decode(encoded)), _pixels(png))


def test_base64_unchanged_when_already_clean():
    png = _noise_png(seed=1)
    plain = base64.b64encode(png).decode("ascii")
    assert "http" not in plain.lower()

    assert _base64_without_http(png) == plain
