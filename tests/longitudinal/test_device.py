"""Device and precision of the longitudinal models (radiograph.longitudinal.train): settings
checked with the key named, fp32 on the CPU unchanged by the settings, bf16 on the CPU close to
fp32, the background batch builder giving the same batches (same random draws) as the inline
one, and, where CUDA is present, CUDA predictions against the CPU's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from radiograph.longitudinal import study as study_module
from radiograph.longitudinal.train import (
    ClinicalFeatures,
    PatientImages,
    TrainSettings,
    _ahead,
    collate,
    fit_clinical_net,
    fit_model,
    model_device,
    predict,
    predict_clinical,
    training_batches,
)
from radiograph.nn.longitudinal import MRPConfig, MRPModel
from radiograph.train.config import ConfigError
from tests.longitudinal.planted import VARIABLES, _cohort

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def case() -> tuple[list[PatientImages], np.ndarray, np.ndarray, np.ndarray, ClinicalFeatures]:
    """16 planted-signal patients with 8^3 volumes: images, clinical inputs, cross-modal
    targets, labels and the fitted encoding."""
    patients, table = _cohort(16, seed=3, size=8)
    clinical = ClinicalFeatures(VARIABLES).fit(table)
    labels = np.array([p.label for p in patients])
    return patients, clinical.inputs(table), clinical.targets(table), labels, clinical


def _fit(case, modality: str = "mri", dropout: float = 0.1, **settings) -> MRPModel:
    """A 2-epoch ``modality`` model trained on ``case`` with ``settings``."""
    patients, x, targets, _, clinical = case
    config = MRPConfig(
        modality,
        3,
        clinical_widths=clinical.widths_,
        aux_classes=clinical.aux_classes_,
        feature_dim=8,
        hidden=8,
        dropout=dropout,
    )
    rows = [i for i, p in enumerate(patients) if p.items(modality)]
    train = TrainSettings(epochs=2, batch_size=6, seed=5, **settings)
    return fit_model(config, [patients[i] for i in rows], x[rows], targets[rows], train)


def _fit_and_predict(case, modality: str = "mri", **settings) -> np.ndarray:
    """Predictions of :func:`_fit`'s model at the training precision."""
    model = _fit(case, modality, **settings)
    return predict(model, case[0], case[1], precision=settings.get("precision", "fp32"))


def test_settings_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"^device: 'gpu0': not a device name"):
        TrainSettings(device="gpu0")
    with pytest.raises(ValueError, match=r"^precision: .*'fp8'"):
        TrainSettings(device="cpu", precision="fp8")
    with pytest.raises(ValueError, match=r"^precision: precision 'fp16' needs a CUDA device"):
        TrainSettings(device="cpu", precision="fp16")
    with pytest.raises(ValueError, match=r"^device: must be"):
        TrainSettings(device="")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device: 'cuda': CUDA is not available"):
            TrainSettings(device="cuda")
    # the study's YAML: the error names the section and the key
    raw = {"kind": "longitudinal", "manifest": "m.csv", "out": "out"}
    for model, key in (({"precision": "fp8"}, "precision"), ({"device": "tpu"}, "device")):
        path = tmp_path / "longitudinal.yaml"
        path.write_text(yaml.safe_dump({**raw, "model": model}))
        with pytest.raises(ConfigError) as err:
            study_module.load_config(path)
        assert "model" in str(err.value) and f"{key}:" in str(err.value)
    path.write_text(yaml.safe_dump({**raw, "model": {"device": "cpu", "precision": "bf16"}}))
    model = study_module.load_config(path).model
    assert (model.device, model.precision) == ("cpu", "bf16")


def test_fp32_on_cpu_identical_to_unset_device(case, monkeypatch):
    """Explicit ``device: cpu, precision: fp32`` gives bit-identical predictions to the
    defaults (``auto``, with CUDA hidden so that it resolves to the CPU on every machine)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    default = _fit_and_predict(case)
    explicit = _fit_and_predict(case, device="cpu", precision="fp32")
    assert np.isfinite(default).all()
    np.testing.assert_array_equal(explicit, default)
    patients, x, _, labels, clinical = case
    nets = [
        fit_clinical_net(x, labels, clinical.widths_, TrainSettings(epochs=3, **kw))
        for kw in ({}, {"device": "cpu", "precision": "fp32"})
    ]
    np.testing.assert_array_equal(predict_clinical(nets[1], x), predict_clinical(nets[0], x))


def test_bf16_on_cpu_trains_and_stays_close_to_fp32(case):
    """bf16 autocast on the CPU: training runs, the probabilities come back float32-computed
    on the host and lie within 5e-3 of fp32's (measured on this case, one thread: at most
    2.5e-4 for the MRI model, 1.3e-4 for the mammography model, 3.3e-4 for the clinical-only
    net; the probabilities lie in 0.49-0.54 after 2 epochs)."""
    for modality in ("mri", "mammo"):
        fp32 = _fit_and_predict(case, modality, device="cpu")
        bf16 = _fit_and_predict(case, modality, device="cpu", precision="bf16")
        assert bf16.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(bf16), np.isnan(fp32))
        assert np.nanmax(np.abs(bf16 - fp32)) < 5e-3
        assert not np.array_equal(bf16, fp32, equal_nan=True)  # bf16 did change the arithmetic
    _, x, _, labels, clinical = case
    probs = [
        predict_clinical(
            fit_clinical_net(x, labels, clinical.widths_, TrainSettings(epochs=3, **kw)),
            x,
            kw["precision"],
        )
        for kw in ({"device": "cpu", "precision": "fp32"}, {"device": "cpu", "precision": "bf16"})
    ]
    assert np.abs(probs[1] - probs[0]).max() < 5e-3


def test_background_batches_equal_inline_batches(case):
    """The CUDA path builds batches one ahead in a thread (``_ahead``): same batches, same
    random draws (the flips and subsets depend on the numpy generator's order), and an error
    of the builder reaches the caller."""
    patients, x, targets, _, clinical = case
    config = MRPConfig("mri", 3, clinical_widths=clinical.widths_)
    settings = TrainSettings(epochs=2, batch_size=5, device="cpu")

    def batches(background: bool) -> list:
        rng = np.random.default_rng(11)
        items = training_batches(config, patients, x, targets, settings, rng, pin=False)
        return list(_ahead(items) if background else items)

    inline, background = batches(False), batches(True)
    assert len(inline) == len(background) == 2 * 4
    for a, b in zip(inline, background):
        for s, t in zip(a, b):
            torch.testing.assert_close(s, t, rtol=0, atol=0, equal_nan=True)

    def failing():
        yield inline[0]
        raise RuntimeError("patient P003: broken volume")

    got = _ahead(failing())
    assert next(got) is inline[0]
    with pytest.raises(RuntimeError, match="P003"):
        next(got)


@pytest.mark.parametrize("dims", [2, 3])
def test_flips_in_collate_match_flipping_the_collated_batch(dims):
    """``collate(..., flip_rng=)`` flips by a reversed-view copy (no extra pass); it equals
    flipping each slot of the unflipped batch with the same draws (the earlier two-pass
    implementation, kept here as the reference), absent slots included."""
    rng = np.random.default_rng(2)
    selected = [
        tuple((k, rng.standard_normal((5, 6, 7)[:dims]).astype(np.float32)) for k in range(n))
        for n in (3, 1, 0, 2)
    ]
    fused, phase, mask = collate(selected, dims, flip_rng=np.random.default_rng(9))
    plain, phase0, mask0 = collate(selected, dims)
    draws = np.random.default_rng(9).random((4 * 3, dims)) < 0.5
    assert draws.any() and not draws.all()
    flat = plain.reshape(12, *plain.shape[2:])
    reference = torch.stack(
        [x.flip([1 + a for a in range(dims) if d[a]]) for x, d in zip(flat, draws)]
    ).reshape(plain.shape)
    assert torch.equal(fused, reference) and not torch.equal(fused, plain)
    assert torch.equal(phase, phase0) and torch.equal(mask, mask0)


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_and_predictions_close_to_cpu(case, precision):
    """Without dropout (whose masks come from a device's own generator) a model trained on
    CUDA draws the same initial weights, subsets and flips as on the CPU; its predictions lie
    within 0.01 of the CPU fp32 model's (cuDNN's TF32 convolutions and bf16 / fp16 round
    differently; bf16 on the CPU measured 2.5e-4) and come back as host arrays; the same
    trained model predicts alike on CUDA and, moved, on the CPU (fp32: within 1e-3)."""
    patients, x = case[0], case[1]
    cpu = predict(_fit(case, dropout=0.0, device="cpu"), patients, x)
    model = _fit(case, dropout=0.0, device="cuda", precision=precision)
    assert model_device(model).type == "cuda"
    cuda = predict(model, patients, x, precision=precision)
    assert isinstance(cuda, np.ndarray) and cuda.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(cuda), np.isnan(cpu))
    assert np.nanmax(np.abs(cuda - cpu)) < 0.01
    if precision == "fp32":
        moved = predict(model.cpu(), patients, x)
        assert np.nanmax(np.abs(moved - cuda)) < 1e-3
