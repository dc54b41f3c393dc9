"""BiRefNet (Swin-L, general configuration) exporter: architecture, checkpoint loading,
the deformable convolution against torchvision's, and the exported file run through
libpetmatte.

Run by ctest's pytest_models suite (tests/python.cmake) with Debian's
/usr/bin/python3 (torch 1.13, python3-torchvision 0.14 as the deformable convolution's
reference). The library test needs PETMATTE_LIBRARY (the built libpetmatte.so) and is
skipped only when it is unset.

Swin-L is big (220 M parameters, a 930 MB file): the whole model runs at 64x64 only,
built, randomised and exported once per test run (module-scoped fixtures).
"""
import argparse
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import export_birefnet  # noqa: E402
from birefnet import (BiRefNet, deform_conv2d, detect_backbone, extract_state_dict,  # noqa: E402
                      load_checkpoint, state_dict_entries, valid_size)
from birefnet import model as model_module  # noqa: E402
from inspyrenet import randomize_  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "birefnet_swin_v1_l_keys.json"
SIZE = 64
SEED = 4321
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def fixture_data():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def plain_model():
    """Swin-L BiRefNet as checkpoints load into it (no folding), untouched weights."""
    return BiRefNet().eval()


# -- (1) the module tree and checkpoint loading ----------------------------------------

def test_state_dict_matches_fixture(plain_model, fixture_data):
    got = [list(e) for e in state_dict_entries(plain_model)]
    assert len(got) == len(fixture_data["inference"]) == 742
    for g, want in zip(got, fixture_data["inference"]):
        assert g == want
    assert [[k, list(v)] for k, v in plain_model.training_only_keys().items()] == fixture_data["training_only"]


@pytest.mark.parametrize("name,shape", [
    # Facts read from upstream (ZhengPeng7/BiRefNet config.py, models/): Swin-L embed 192,
    # heads 6/12/24/48, window 12 -> 23^2 = 529 bias rows.
    ("bb.patch_embed.proj.weight", [192, 3, 4, 4]),
    ("bb.layers.0.blocks.1.attn.relative_position_bias_table", [529, 6]),
    ("bb.layers.2.blocks.17.attn.qkv.weight", [2304, 768]),
    ("bb.layers.3.blocks.1.attn.relative_position_bias_table", [529, 48]),
    ("bb.norm3.weight", [1536]),
    # mul_scl_ipt 'cat' doubles [1536, 768, 384, 192]; the squeeze block takes x4 and
    # the three context maps: 3072 + 384 + 768 + 1536 = 5760 channels.
    ("squeeze_module.0.conv_in.weight", [64, 5760, 3, 3]),
    ("squeeze_module.0.conv_out.weight", [3072, 64, 3, 3]),
    # dec_ipt split: 3 * 32^2 channels of image tiles at stride 32, out channels // 8.
    ("decoder.ipt_blk5.conv1.weight", [64, 3072, 3, 3]),
    ("decoder.ipt_blk5.conv_out.weight", [384, 64, 3, 3]),
    ("decoder.ipt_blk1.conv_out.weight", [48, 64, 3, 3]),
    ("decoder.decoder_block4.conv_in.weight", [64, 3456, 3, 3]),
    ("decoder.decoder_block1.conv_out.weight", [192, 64, 3, 3]),
    # ASPPDeformable: 1x1 branch plus kernels 1, 3, 7; offsets 2*k*k, mask k*k.
    ("decoder.decoder_block2.dec_att.aspp1.atrous_conv.offset_conv.weight", [2, 64, 1, 1]),
    ("decoder.decoder_block2.dec_att.aspp_deforms.2.atrous_conv.offset_conv.weight", [98, 64, 7, 7]),
    ("decoder.decoder_block2.dec_att.aspp_deforms.1.atrous_conv.modulator_conv.bias", [9]),
    ("decoder.decoder_block2.dec_att.aspp_deforms.2.atrous_conv.regular_conv.weight", [256, 64, 7, 7]),
    ("decoder.decoder_block2.dec_att.global_avg_pool.1.weight", [256, 64, 1, 1]),
    ("decoder.decoder_block2.dec_att.conv1.weight", [64, 1280, 1, 1]),
    ("decoder.conv_out1.0.weight", [1, 240, 1, 1]),
    ("decoder.lateral_block4.conv.weight", [1536, 1536, 1, 1]),
    # out_ref's gates run in inference; BatchNorm (batch_size > 1) in the middle.
    ("decoder.gdt_convs_4.0.weight", [16, 1536, 3, 3]),
    ("decoder.gdt_convs_2.1.running_var", [16]),
    ("decoder.gdt_convs_attn_3.0.weight", [1, 16, 1, 1]),
])
def test_upstream_facts(fixture_data, name, shape):
    assert [name, shape, "float32"] in fixture_data["inference"]


def test_training_only_heads_are_the_supervision_and_gradient_predictors(fixture_data):
    names = {k for k, _ in fixture_data["training_only"]}
    assert names == {f"decoder.conv_ms_spvn_{i}.{p}" for i in (4, 3, 2) for p in ("weight", "bias")} | \
        {f"decoder.gdt_convs_pred_{i}.0.{p}" for i in (4, 3, 2) for p in ("weight", "bias")}
    inference = {e[0] for e in fixture_data["inference"]}
    assert not names & inference
    assert dict((k, v) for k, v in fixture_data["training_only"])["decoder.conv_ms_spvn_4.weight"] == [1, 1536, 1, 1]


def upstream_like_checkpoint(model, prefix="module._orig_mod."):
    """What a compiled, DataParallel-trained upstream run saves: the module's entries and
    the training-only heads, every key prefixed."""
    state = {prefix + k: v for k, v in model.state_dict().items()}
    for k, shape in model.training_only_keys().items():
        state[prefix + k] = torch.zeros(shape)
    return state


def test_checkpoint_loads_strictly_dropping_only_training_heads(plain_model):
    target = copy.deepcopy(plain_model)  # (a copy is faster than a fresh Swin-L)
    with torch.no_grad():
        for t in target.parameters():
            t.zero_()
    dropped = load_checkpoint(target, extract_state_dict(upstream_like_checkpoint(plain_model)))
    assert sorted(dropped) == sorted(plain_model.training_only_keys())
    key = "decoder.decoder_block3.dec_att.aspp_deforms.1.atrous_conv.offset_conv.weight"
    assert torch.equal(target.state_dict()[key], plain_model.state_dict()[key])
    wrapped = extract_state_dict({"state_dict": upstream_like_checkpoint(plain_model, "_orig_mod.")})
    assert "bb.norm0.weight" in wrapped


def test_checkpoint_with_other_keys_is_refused(plain_model):
    state = extract_state_dict(upstream_like_checkpoint(plain_model))
    target = copy.deepcopy(plain_model)
    unknown = dict(state, **{"decoder.unknown_head.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="unknown_head"):
        load_checkpoint(target, unknown)
    missing = dict(state)
    del missing["decoder.gdt_convs_attn_4.0.bias"]
    with pytest.raises(RuntimeError, match="gdt_convs_attn_4"):
        load_checkpoint(target, missing)
    misshaped = dict(state, **{"decoder.conv_ms_spvn_3.weight": torch.zeros(1, 7, 1, 1)})
    with pytest.raises(ValueError, match="conv_ms_spvn_3"):
        load_checkpoint(target, misshaped)
    with pytest.raises(ValueError):
        extract_state_dict({})


def test_backbone_is_detected_from_checkpoint_shapes():
    def fake(embed, depth3):
        s = {"bb.patch_embed.proj.weight": torch.zeros(embed, 3, 4, 4)}
        s.update({f"bb.layers.2.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(depth3)})
        return s
    assert detect_backbone(fake(192, 18)) == "swin_v1_l"
    assert detect_backbone(fake(128, 18)) == "swin_v1_b"
    assert detect_backbone(fake(96, 18)) == "swin_v1_s"
    assert detect_backbone(fake(96, 6)) == "swin_v1_t"
    with pytest.raises(ValueError):
        detect_backbone(fake(64, 6))
    with pytest.raises(ValueError):
        detect_backbone({"decoder.x": torch.zeros(1)})


def test_supported_sizes():
    assert valid_size(1024, 1024) is None and valid_size(2048, 2048) is None
    assert valid_size(1440, 2560) is None and valid_size(64, 64) is None
    assert valid_size(1000, 1024) is not None and valid_size(32, 32) is not None
    assert valid_size(8192, 8192) is not None
    assert export_birefnet.parse_size("2560x1440") == (2560, 1440)
    with pytest.raises(SystemExit):
        export_birefnet.parse_size("1000")


# -- (2) the deformable convolution against torchvision's -------------------------------

@pytest.fixture(scope="module")
def torchvision_ops():
    """The reference operator (python3-torchvision, which scripts/install-deps.sh
    installs); without it only the comparisons skip."""
    return pytest.importorskip("torchvision.ops")


def deform_case(seed, b, c, h, w, o, k, stride, pad, dil, groups, offset_groups, scale, with_mask,
                dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    x = torch.randn(b, c, h, w, generator=gen, dtype=dtype)
    weight = torch.randn(o, c // groups, k, k, generator=gen, dtype=dtype)
    bias = torch.randn(o, generator=gen, dtype=dtype)
    offset = torch.randn(b, 2 * offset_groups * k * k, ho, wo, generator=gen, dtype=dtype) * scale
    # Integer and half-integer offsets too: exactly on pixels and on the border lines.
    offset[:, :2] = torch.randint(-3, 4, offset[:, :2].shape, generator=gen).to(dtype) / 2
    mask = torch.rand(b, offset_groups * k * k, ho, wo, generator=gen, dtype=dtype) * 2 if with_mask else None
    return x, offset, mask, weight, bias


@pytest.mark.parametrize("b,c,h,w,o,k,stride,pad,dil,groups,offset_groups,scale,with_mask", [
    # BiRefNet's: kernels 1, 3 and 7 with padding k // 2, stride 1, one group, one
    # offset group, modulated; offsets of about a pixel and far outside the map.
    (1, 16, 12, 12, 8, 1, 1, 0, 1, 1, 1, 1.5, True),
    (2, 16, 9, 11, 8, 3, 1, 1, 1, 1, 1, 2.0, True),
    (1, 8, 10, 10, 12, 7, 1, 3, 1, 1, 1, 3.0, True),
    (1, 8, 10, 10, 12, 7, 1, 3, 1, 1, 1, 40.0, True),
    (1, 8, 1, 1, 4, 7, 1, 3, 1, 1, 1, 1.0, True),  # a one-pixel map (64x64 input, stride 32)
    (1, 8, 2, 2, 4, 3, 1, 1, 1, 1, 1, 1000.0, True),  # everything outside: zeros + bias
    # Without the mask (DCNv1), and the general operator's other parameters.
    (2, 8, 9, 7, 6, 3, 1, 1, 1, 1, 1, 2.0, False),
    (2, 8, 10, 12, 6, 3, 2, 2, 2, 2, 2, 2.5, True),
    (1, 12, 8, 8, 6, 3, 1, 1, 1, 3, 4, 1.0, False),
])
def test_deform_conv2d_matches_torchvision(torchvision_ops, b, c, h, w, o, k, stride, pad, dil, groups,
                                           offset_groups, scale, with_mask):
    x, offset, mask, weight, bias = deform_case(7, b, c, h, w, o, k, stride, pad, dil, groups,
                                                offset_groups, scale, with_mask, dtype=torch.float32)
    want = torchvision_ops.deform_conv2d(x, offset, weight, bias, stride=stride, padding=pad, dilation=dil,
                                         mask=mask)
    got = deform_conv2d(x, offset, mask, weight, bias, [stride] * 2, [pad] * 2, [dil] * 2)
    assert got.shape == want.shape and got.dtype == torch.float32
    # fp32 rounding: sums of c*k*k products of magnitude ~1, positions up to ~1000.
    tol = 2e-5 * (1.0 + float(want.abs().max()))
    assert float((got - want).abs().max()) <= tol


@pytest.mark.parametrize("k,pad", [(1, 0), (3, 1), (7, 3)])
def test_deform_conv2d_keeps_nhwc_input_in_nhwc(torchvision_ops, k, pad):
    """libpetmatte runs the file channels_last: an NHWC input gives the same values,
    in NHWC order."""
    x, offset, mask, weight, bias = deform_case(11, 2, 16, 9, 10, 8, k, 1, pad, 1, 1, 1, 2.0, True,
                                                dtype=torch.float32)
    want = torchvision_ops.deform_conv2d(x, offset, weight, bias, padding=pad, mask=mask)
    cl = torch.channels_last
    got = deform_conv2d(x.contiguous(memory_format=cl), offset.contiguous(memory_format=cl),
                        mask.contiguous(memory_format=cl), weight.contiguous(memory_format=cl), bias,
                        [1, 1], [pad, pad], [1, 1])
    assert got.is_contiguous(memory_format=cl) and not got.is_contiguous()
    assert float((got - want).abs().max()) <= 2e-5 * (1.0 + float(want.abs().max()))


def test_deform_conv2d_samples_with_zero_padding_at_borders(torchvision_ops):
    """One channel of ones, a 1x1 kernel of weight 1: the output is the share of the
    bilinear footprint inside the map, torchvision's rule (and 0 from -1 outward)."""
    x = torch.ones(1, 1, 4, 4)
    weight = torch.ones(1, 1, 1, 1)
    offset = torch.zeros(1, 2, 4, 4)
    offset[0, 1, 0, 0] = -0.25  # x - 0.25 at the left border: 3/4 inside
    offset[0, 0, 3, 3] = 0.5  # y + 0.5 at the bottom border: 1/2 inside
    offset[0, 1, 1, 1] = -1.0  # exactly on x = 0: fully inside
    offset[0, 1, 2, 0] = -1.0  # x = -1: outside
    got = deform_conv2d(x, offset, None, weight, None, [1, 1], [0, 0], [1, 1])
    want = torchvision_ops.deform_conv2d(x, offset, weight)
    assert torch.allclose(got, want, atol=1e-6)
    assert float(got[0, 0, 0, 0]) == pytest.approx(0.75) and float(got[0, 0, 3, 3]) == pytest.approx(0.5)
    assert float(got[0, 0, 1, 1]) == pytest.approx(1.0) and float(got[0, 0, 2, 0]) == 0.0


def test_deform_conv2d_follows_the_weights_dtype_and_survives_save_load(torchvision_ops, tmp_path):
    """In a traced and saved module (what libpetmatte loads), converted to another
    dtype after tracing: sampling stays float32, the product and the output take the
    weights' dtype."""
    x, offset, mask, weight, bias = deform_case(3, 1, 8, 6, 6, 4, 3, 1, 1, 1, 1, 1, 1.0, True,
                                                dtype=torch.float32)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias)

        def forward(self, x, offset, mask):
            return deform_conv2d(x, offset, mask, self.weight, self.bias, [1, 1], [1, 1], [1, 1])

    with torch.no_grad():
        traced = torch.jit.trace(M(), (x, offset, mask))
    torch.jit.save(traced, str(tmp_path / "d.pt"))
    loaded = torch.jit.load(str(tmp_path / "d.pt"))
    want = torchvision_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    with torch.no_grad():
        assert torch.allclose(loaded(x, offset, mask), want, atol=1e-5)
        loaded.double()
        got = loaded(x.double(), offset.double(), mask.double())
    assert got.dtype == torch.float64
    assert torch.allclose(got.float(), want, atol=1e-5)


def test_deformable_module_matches_torchvision_with_its_weights(torchvision_ops):
    """Upstream's DeformableConv2d: offsets and 2 * sigmoid(mask) from two
    convolutions, then torchvision's operator with regular_conv's weight."""
    torch.manual_seed(0)
    m = model_module.DeformableConv2d(8, 6, 7, 3).eval()
    with torch.no_grad():
        for conv in (m.offset_conv, m.modulator_conv):
            conv.weight.normal_(0, 0.3)
            conv.bias.normal_(0, 0.5)
        x = torch.randn(2, 8, 9, 10)
        want = torchvision_ops.deform_conv2d(x, m.offset_conv(x), m.regular_conv.weight, None, padding=3,
                                             mask=2 * torch.sigmoid(m.modulator_conv(x)))
        assert torch.allclose(m(x), want, atol=1e-5)


# -- (3) the inference form and the exported file ------------------------------------------

def example_input(batch=1):
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def random_model():
    torch.set_grad_enabled(False)
    return randomize_(BiRefNet(), SEED).eval()


@pytest.fixture(scope="module")
def reference_output(random_model):
    """The checkpoint-layout module's output (BatchNorm unfolded, upstream's head,
    Swin constants computed on the fly)."""
    return random_model(example_input())


@pytest.fixture(scope="module")
def exported(random_model, tmp_path_factory):
    """(path, manifest, inference-form model): the exporter's steps on a copy of
    random_model, then its export()."""
    path = tmp_path_factory.mktemp("birefnet") / f"birefnet_random_{SIZE}.pt"
    model = export_birefnet.inference_form(copy.deepcopy(random_model), (SIZE, SIZE), ("head",), "auto")
    manifest = export_birefnet.make_manifest("birefnet-test", SIZE, SIZE, True, "test", "MIT", {})
    export_birefnet.export(model, (SIZE, SIZE), manifest, str(path), verify=False, log=lambda *a: None)
    return path, manifest, model


def test_inference_form_keeps_the_output(random_model, reference_output, exported):
    """BatchNorm folding, the fused head and the precomputed Swin constants (both input
    sizes) change the arithmetic's order only."""
    _, _, model = exported
    assert model.decoder.head_fused and model.squeeze_module[0].bn_in is None
    assert sorted(model.bb.layers[0].prepared) == [(SIZE // 8, SIZE // 8), (SIZE // 4, SIZE // 4)]
    got = model(example_input())
    assert got.shape == (1, 1, SIZE, SIZE)
    assert float((got - reference_output).abs().max()) <= 1e-5
    # Random weights still give a map with structure, in (0, 1).
    assert float(got.min()) > 0.0 and float(got.max()) < 1.0 and float(got.std()) > 1e-2


def test_channels_last_gives_the_same_output(exported, reference_output):
    """The manifest asks for NHWC weights and input (on a GPU, and libpetmatte does it
    on the CPU too): the module reshapes, never views, so the values do not change."""
    _, _, model = exported
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    got = nhwc(example_input().contiguous(memory_format=torch.channels_last))
    assert float((got - reference_output).abs().max()) <= 1e-5


def test_exporter_builds_the_manifest_and_refuses_bad_options(plain_model, monkeypatch):
    """build() from the command-line arguments (random weights left as built, the
    module a copy of one built before, to keep the test fast): size, name and
    manifest fields; bad options exit with a reason."""
    monkeypatch.setattr(export_birefnet, "randomize_", lambda m, seed: m)
    monkeypatch.setattr(export_birefnet, "BiRefNet", lambda backbone: copy.deepcopy(plain_model)
                        if backbone == "swin_v1_l" else BiRefNet(backbone))
    args = argparse.Namespace(checkpoint=None, random_weights=True, seed=3, size="128x64", backbone=None,
                              attention="auto", rewrites="none", name=None)
    model, size, manifest = export_birefnet.build(args, log=lambda *a: None)
    m = json.loads(manifest)
    assert size == (128, 64) and not model.decoder.head_fused
    assert m["input"] == {"width": 128, "height": 64, "mean": list(MEAN), "std": list(STD)}
    assert m["output"] == {"activation": "probability", "normalize": "none", "resize": "bilinear",
                           "align_corners": True}
    assert m["gpu"] == {"channels_last": True} and m["random_weights"] is True
    assert m["name"] == "birefnet-random-128x64" and m["seed"] == 3 and m["rewrites"] == []
    bad_options = [dict(size="100"), dict(rewrites="resize"), dict(backbone="swin_v1_x")]
    if not hasattr(F, "scaled_dot_product_attention"):
        bad_options.append(dict(attention="sdpa"))
    for bad in bad_options:
        with pytest.raises((SystemExit, ValueError)):
            export_birefnet.build(argparse.Namespace(**dict(vars(args), **bad)), log=lambda *a: None)
    with pytest.raises(SystemExit):
        export_birefnet.main(["--random-weights", "--out", "/nonexistent/x.pt", "--precision", "fp16"])


def test_exporter_loads_a_checkpoint_and_finds_its_backbone(tmp_path):
    """--checkpoint end to end on a lite (Swin-T) checkpoint, which is small: prefixes
    stripped, training-only heads dropped and named, the backbone read from the shapes,
    the manifest naming the file and its md5, the file's output the module's."""
    lite = randomize_(BiRefNet("swin_v1_t"), 5).eval()
    ckpt = tmp_path / "BiRefNet_lite-general-epoch_10.pth"
    torch.save(upstream_like_checkpoint(lite, "_orig_mod."), str(ckpt))
    logs = []
    args = argparse.Namespace(checkpoint=str(ckpt), random_weights=False, seed=0, size="64", backbone=None,
                              attention="auto", rewrites="all", name=None)
    model, size, manifest = export_birefnet.build(args, log=logs.append)
    m = json.loads(manifest)
    assert model.backbone_name == "swin_v1_t" and size == (64, 64)
    assert m["name"] == "birefnet-lite-general-epoch-10-64x64" and m["random_weights"] is False
    assert m["checkpoint_md5"] == export_birefnet.md5_of(str(ckpt)) and m["checkpoint_md5"] in m["source"]
    assert "MIT" in m["license"] and m["architecture"].startswith("BiRefNet swin_v1_t")
    assert "dropped 12 training-only" in logs[0] and "decoder.gdt_convs_pred_2.0.weight" in logs[0]
    x = example_input()
    want = lite(x)
    out = tmp_path / "lite.pt"
    export_birefnet.export(model, size, manifest, str(out), verify=True, log=lambda *a: None)
    assert float((torch.jit.load(str(out))(x) - want).abs().max()) <= 1e-5
    with pytest.raises(SystemExit, match="swin_v1_t"):
        export_birefnet.build(argparse.Namespace(**dict(vars(args), backbone="swin_v1_l")), log=lambda *a: None)


def test_export_load_run(exported, reference_output):
    path, manifest, _ = exported
    files = {"petmatte.json": ""}
    loaded = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    assert json.loads(files["petmatte.json"]) == json.loads(manifest)
    got = loaded(example_input())
    assert tuple(got.shape) == (1, 1, SIZE, SIZE)
    assert float((got - reference_output).abs().max()) <= 1e-5


def test_graph_is_device_and_dtype_neutral(exported):
    """libpetmatte converts precision with module.to(fp16/bf16) and moves the module to
    CUDA at load: no device or float tensor may be baked into the file as a constant."""
    path, _, _ = exported
    graph = torch.jit.load(str(path), map_location="cpu").inlined_graph
    for node in graph.findAllNodes("prim::Constant"):
        kind = node.output().type().kind()
        assert kind != "DeviceObjType", f"device constant: {node}"
        if kind == "TensorType" and node.hasAttribute("value"):
            v = node.t("value")
            assert not (v.is_floating_point() and v.dim() > 0), f"float tensor constant: {node}"
    # The deformable convolutions are plain operators: four in each of the five
    # BasicDecBlks (squeeze block, decoder blocks 4..1), each one grid_sample.
    assert len(graph.findAllNodes("aten::grid_sampler")) == 20
    assert not [n for n in graph.nodes() if "torchvision" in n.kind()]


def test_exported_file_follows_the_weights_dtype(exported, reference_output):
    """float64 stands in for fp16/bf16 on the CPU: every layer must follow the
    weights' dtype (a layer left in float32 fails with a dtype mismatch)."""
    path, _, _ = exported
    traced = torch.jit.load(str(path), map_location="cpu").eval()
    for t in list(traced.parameters()) + list(traced.buffers()):
        if t.is_floating_point():
            t.data = t.data.double()
    got = traced(example_input().double())
    assert got.dtype == torch.float64
    assert float((got.float() - reference_output).abs().max()) <= 1e-5


# -- (4) the file through libpetmatte -----------------------------------------------------

def open_cpu(path, **params):
    lib_path = os.environ.get("PETMATTE_LIBRARY")
    if not lib_path:
        pytest.skip("PETMATTE_LIBRARY is not set (ctest sets it to the built libpetmatte.so)")
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    from petmatte import Matte
    return Matte(path, device="cpu", precision="fp32",
                 tune={"warmup_min_runs": 1, "warmup_max_runs": 1}, lib_path=lib_path, **params)


def synthetic_image(width, height):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    disc = ((xx - 0.55 * width) ** 2 + (yy - 0.45 * height) ** 2) < (0.3 * min(width, height)) ** 2
    img = np.stack([40 + 180 * xx / max(width - 1, 1), 60 + 150 * yy / max(height - 1, 1),
                    90 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)], axis=-1)
    img[disc] = img[disc] * 0.3 + np.array([230.0, 40.0, 60.0]) * 0.7
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def reference_matte(model, rgb):
    """libpetmatte's documented pipeline for this manifest, in Python: RGB/255,
    (antialiased when shrinking) bilinear resize to the input size, ImageNet
    normalisation, forward, no min-max, bilinear align_corners=True back, *255, round."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div(255.0)
    if (h, w) != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False,
                          antialias=h > SIZE or w > SIZE)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    p = model(x).float()
    if (h, w) != (SIZE, SIZE):
        p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=True)
    return p.clamp(0, 1).mul(255).round().to(torch.uint8).reshape(h, w).numpy()


def test_library_matches_python(exported):
    path, _, model = exported
    with open_cpu(path) as m:
        m.warmup()
        for w, h in ((SIZE, SIZE), (2 * SIZE, SIZE + 32)):
            rgb = synthetic_image(w, h)
            got = m.remove_bg(rgb, output="mask")
            assert got.shape == (h, w) and got.dtype == np.uint8
            want = reference_matte(model, rgb)
            diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
            assert int(diff.max()) <= 1, f"{w}x{h}: max |library - python| = {int(diff.max())} levels"
            assert int(want.max()) - int(want.min()) > 20  # a matte with structure
