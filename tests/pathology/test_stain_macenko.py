"""Macenko normalisation on images rendered with known stain matrices (Beer-Lambert)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from radiograph.pathology.stain import (
    DEFAULT_TARGET,
    MacenkoNormalizer,
    StainError,
    fit_macenko,
    load_stain_target,
)

IO = 240.0


def unit_columns(m):
    m = np.asarray(m, dtype=float)
    return m / np.linalg.norm(m, axis=0)


STAINS_A = unit_columns([[0.56, 0.22], [0.72, 0.80], [0.41, 0.56]])  # columns: H, E
STAINS_B = unit_columns([[0.70, 0.35], [0.68, 0.86], [0.22, 0.37]])  # the same slide, other lab


def concentrations(n=40_000, seed=0):
    """Pure H, pure E, mixed and unstained pixels in equal shares."""
    rng = np.random.default_rng(seed)
    c = np.zeros((n, 2))
    kind = rng.integers(0, 4, n)
    c[kind == 0, 0] = rng.uniform(0.7, 1.8, (kind == 0).sum())
    c[kind == 1, 1] = rng.uniform(0.7, 1.8, (kind == 1).sum())
    c[kind == 2] = rng.uniform(0.4, 1.2, ((kind == 2).sum(), 2))
    return c


def render(stains, c, side=200):
    return (
        np.clip(np.round(IO * np.exp(-(c @ stains.T))), 0, 255)
        .astype(np.uint8)
        .reshape(side, side, 3)
    )


def test_fitted_stain_vectors_match_the_generating_ones():
    fitted = fit_macenko(render(STAINS_A, concentrations()))
    cosines = (fitted.stain_matrix * STAINS_A).sum(axis=0)
    assert cosines.min() > 0.9999  # H first, E second, both recovered
    np.testing.assert_allclose(np.linalg.norm(fitted.stain_matrix, axis=0), 1.0)


def test_normalising_a_stain_change_recovers_the_reference_image():
    c = concentrations()
    reference, shifted = render(STAINS_A, c), render(STAINS_B, c)
    normaliser = MacenkoNormalizer(fit_macenko(shifted), fit_macenko(reference))
    out = normaliser(shifted)
    before = np.abs(shifted.astype(float) - reference).mean()
    after = np.abs(out.astype(float) - reference).mean()
    assert before > 10 and after < 1.5
    assert out.dtype == np.uint8 and out.shape == shifted.shape


def test_normalising_to_its_own_stains_is_nearly_identity():
    image = render(STAINS_B, concentrations(seed=1))
    params = fit_macenko(image)
    assert np.abs(MacenkoNormalizer(params, params)(image).astype(float) - image).mean() < 1.0


def test_default_target_moves_stains_towards_the_reference_vectors():
    c = concentrations()
    out = MacenkoNormalizer(fit_macenko(render(STAINS_B, c)), DEFAULT_TARGET)(render(STAINS_B, c))
    refit = fit_macenko(out)
    assert (refit.stain_matrix * DEFAULT_TARGET.stain_matrix).sum(axis=0).min() > 0.999


def test_reference_image_file_and_errors(tmp_path):
    path = tmp_path / "ref.png"
    Image.fromarray(render(STAINS_A, concentrations())).save(path)
    target = load_stain_target(path)
    assert (target.stain_matrix * STAINS_A).sum(axis=0).min() > 0.9999
    assert load_stain_target(None) is DEFAULT_TARGET
    with pytest.raises(StainError, match="not found"):
        load_stain_target(tmp_path / "missing.png")
    with pytest.raises(StainError, match="stained pixels"):
        fit_macenko(np.full((50, 50, 3), 238, np.uint8))
