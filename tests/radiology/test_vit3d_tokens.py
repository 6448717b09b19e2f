"""The 3D ViT: token-to-position map, SegVol (MONAI ViT) weights, weight-file errors."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from radiograph.encoders.base import EncoderError, RandomWeightsWarning
from radiograph.encoders.vit3d import ViT3D, build_volume_encoder, load_volume_weights

pytestmark = pytest.mark.filterwarnings("ignore::radiograph.encoders.base.RandomWeightsWarning")


def mean_detector_state(model: ViT3D) -> dict[str, torch.Tensor]:
    """Weights making token feature 0 grow with its patch's mean intensity, nothing else.

    Patch embedding: feature 0 = patch mean, others 0; no position embedding; every block is
    the identity (its attention and MLP outputs are zeroed, leaving the residual path).
    """
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    state["patch_embed.weight"][0] = 1.0 / np.prod(model.patch_size)
    for key in state:
        if key.endswith("norm1.weight") or key.endswith("norm2.weight") or key == "norm.weight":
            state[key] = torch.ones_like(state[key])
    return state


def test_bright_cube_shows_up_in_its_token(tmp_path):
    model = build_volume_encoder("vit3d-tiny", random_weights=True)
    torch.save(mean_detector_state(model), tmp_path / "detector.pt")
    model = build_volume_encoder("vit3d-tiny", weights=tmp_path / "detector.pt")
    assert model.grid == (4, 8, 8) and model.patch_size == (8, 8, 8)

    volume = torch.zeros(1, 1, *model.img_size)
    # a bright 4^3 cube inside patch (z=2, y=5, x=1): voxels z 18..21, y 42..45, x 10..13
    volume[0, 0, 18:22, 42:46, 10:14] = 1.0
    tokens = model(volume)
    assert tokens.shape == (1, model.num_tokens, model.dim)
    bright = int(tokens[0, :, 0].argmax())
    assert bright == (2 * 8 + 5) * 8 + 1
    start, stop = model.token_boxes()[bright]
    np.testing.assert_array_equal(start, [16, 40, 8])
    np.testing.assert_array_equal(stop, [24, 48, 16])
    others = torch.cat([tokens[0, :bright, 0], tokens[0, bright + 1 :, 0]])
    assert torch.all(others < tokens[0, bright, 0] - 1.0)


def test_token_centres_match_simpleitk():
    model = build_volume_encoder("vit3d-tiny", random_weights=True)
    reference = sitk.Image(100, 90, 80, sitk.sitkUInt8)  # x, y, z sizes
    reference.SetSpacing((0.8, 0.9, 1.5))
    reference.SetOrigin((-30.0, 12.0, 400.0))
    c, s = np.cos(0.3), np.sin(0.3)
    reference.SetDirection((c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c))
    offset = (5, -3, 11)  # window start (z, y, x), may lie outside the image
    centres = model.token_centres_physical(reference, offset)
    boxes = model.token_boxes(offset)
    for i in (0, 77, model.num_tokens - 1):
        centre_zyx = (boxes[i, 0] + boxes[i, 1] - 1) / 2.0
        expected = reference.TransformContinuousIndexToPhysicalPoint(centre_zyx[::-1].tolist())
        np.testing.assert_allclose(centres[i], expected, atol=1e-9)


def monai_reference_forward(state, x, *, patch, heads):
    """MONAI ``ViT`` (pos_embed="perceptron", classification=False) forward, in float64."""
    b, c, d, h, w = x.shape
    p1, p2, p3 = patch
    # einops: b c (h p1) (w p2) (d p3) -> b (h w d) (p1 p2 p3 c)
    t = x.reshape(b, c, d // p1, p1, h // p2, p2, w // p3, p3)
    t = t.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, p1 * p2 * p3 * c)
    t = (
        t @ state["patch_embedding.patch_embeddings.1.weight"].T
        + state["patch_embedding.patch_embeddings.1.bias"]
    )
    t = t + state["patch_embedding.position_embeddings"]
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})

    def ln(v, prefix):
        return torch.nn.functional.layer_norm(
            v, v.shape[-1:], state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps=1e-5
        )

    for i in range(depth):
        p = f"blocks.{i}"
        y = ln(t, f"{p}.norm1")
        qkv = y @ state[f"{p}.attn.qkv.weight"].T
        n, dim = qkv.shape[1], qkv.shape[2] // 3
        # einops: b h (qkv l d) -> qkv b l h d
        q, k, v = qkv.reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) * (dim // heads) ** -0.5, dim=-1)
        y = (att @ v).permute(0, 2, 1, 3).reshape(b, n, dim)
        t = t + y @ state[f"{p}.attn.out_proj.weight"].T + state[f"{p}.attn.out_proj.bias"]
        y = ln(t, f"{p}.norm2")
        y = torch.nn.functional.gelu(
            y @ state[f"{p}.mlp.linear1.weight"].T + state[f"{p}.mlp.linear1.bias"]
        )
        t = t + y @ state[f"{p}.mlp.linear2.weight"].T + state[f"{p}.mlp.linear2.bias"]
    return ln(t, "norm")


def random_monai_state(*, dim, depth, mlp, patch, img, channels, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = int(np.prod(np.array(img) // np.array(patch)))

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * 0.2

    state = {
        "patch_embedding.position_embeddings": r(1, n, dim),
        "patch_embedding.patch_embeddings.1.weight": r(dim, int(np.prod(patch)) * channels),
        "patch_embedding.patch_embeddings.1.bias": r(dim),
        "norm.weight": 1 + r(dim),
        "norm.bias": r(dim),
    }
    for i in range(depth):
        p = f"blocks.{i}"
        state |= {
            f"{p}.norm1.weight": 1 + r(dim),
            f"{p}.norm1.bias": r(dim),
            f"{p}.attn.qkv.weight": r(3 * dim, dim),
            f"{p}.attn.out_proj.weight": r(dim, dim),
            f"{p}.attn.out_proj.bias": r(dim),
            f"{p}.norm2.weight": 1 + r(dim),
            f"{p}.norm2.bias": r(dim),
            f"{p}.mlp.linear1.weight": r(mlp, dim),
            f"{p}.mlp.linear1.bias": r(mlp),
            f"{p}.mlp.linear2.weight": r(dim, mlp),
            f"{p}.mlp.linear2.bias": r(dim),
        }
    return state


def test_segvol_checkpoint_gives_monai_vit_tokens(tmp_path):
    """A SegVol-style checkpoint (MONAI ViT keys under model.encoder.) loads and reproduces
    MONAI's forward: the perceptron patch embedding, qkv packing and block layout map right."""
    patch, img, dim, heads, depth, channels = (2, 4, 3), (4, 8, 6), 24, 4, 2, 2
    state = random_monai_state(
        dim=dim, depth=depth, mlp=48, patch=patch, img=img, channels=channels
    )
    checkpoint = {
        "state_dict": {f"model.encoder.{k}": v.float() for k, v in state.items()}
        | {"model.decoder.weight": torch.zeros(3)}
    }
    torch.save(checkpoint, tmp_path / "ViT_pretrain.ckpt")
    model = ViT3D(
        img_size=img,
        patch_size=patch,
        dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=2.0,
        in_chans=channels,
        name="tiny-segvol",
    )
    load_volume_weights(model, tmp_path / "ViT_pretrain.ckpt")
    x = torch.randn(
        2, channels, *img, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    with torch.no_grad():
        got = model.eval()(x.float()).double()
    expected = monai_reference_forward(state, x, patch=patch, heads=heads)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert len(model.weights_sha256) == 64


def test_segvol_vit_architecture_matches_segvol():
    model = build_volume_encoder("segvol-vit", random_weights=True)
    assert (model.img_size, model.patch_size, model.dim, model.num_tokens) == (
        (32, 256, 256),
        (4, 16, 16),
        768,
        2048,
    )
    assert model.random_weights and model.weights_sha256 == ""
    n_params = sum(p.numel() for p in model.parameters())
    # MONAI ViT-B of SegVol: 12 blocks of 7.08M, 1024->768 patch embedding, 2048 x 768 positions
    expected = (
        12 * (768 * 2304 + 768 * 768 + 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768)
        + (1024 * 768 + 768)
        + 2048 * 768
        + 2 * 768
    )
    assert n_params == expected


def test_weight_file_errors(tmp_path):
    with pytest.raises(EncoderError, match="needs weights"):
        build_volume_encoder("vit3d-tiny")
    with pytest.raises(EncoderError, match="not found"):
        build_volume_encoder("vit3d-tiny", weights=tmp_path / "none.pt")
    with pytest.raises(EncoderError, match="unknown 3D encoder"):
        build_volume_encoder("vit3d-huge", random_weights=True)
    with pytest.warns(RandomWeightsWarning):
        small = build_volume_encoder("vit3d-tiny", random_weights=True)
    state = small.state_dict()
    state.pop("norm.bias")
    state["head.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(
        EncoderError,
        match=r"wrong\.pt.*1 missing keys.*norm\.bias.*"
        r"1 unexpected keys.*head\.weight",
    ):
        build_volume_encoder("vit3d-tiny", weights=tmp_path / "wrong.pt")


def test_random_weights_are_seeded():
    a = build_volume_encoder("vit3d-tiny", random_weights=True, seed=4)
    b = build_volume_encoder("vit3d-tiny", random_weights=True, seed=4)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)
