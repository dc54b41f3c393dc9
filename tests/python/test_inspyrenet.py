"""InSPyReNet (Swin-B) exporter: architecture, export round trip, and the exported
file run through libpetmatte.

Run by ctest's pytest_models suite (tests/python.cmake) with Debian's
/usr/bin/python3 (torch 1.13). The library test needs PETMATTE_LIBRARY (the built
libpetmatte.so) and is skipped only when it is unset.

Swin-B's cost has a floor (its deep third stage is padded to a 12x12 window even for
small inputs), so everything here runs at 64x64, the smallest supported size, and
the model is exported once per test run.
"""
import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import export_inspyrenet  # noqa: E402
from inspyrenet import inspyrenet_swinb, randomize_, state_dict_listing, swin, valid_size  # noqa: E402
from inspyrenet import model as model_module  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "inspyrenet_swinb_state_dict.txt"
SIZE = 64
SEED = 1234
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def fixture_lines():
    return [l for l in FIXTURE.read_text().splitlines() if l and not l.startswith("#")]


# -- (1) the module tree --------------------------------------------------------------

def test_state_dict_matches_fixture():
    listing = state_dict_listing(inspyrenet_swinb()).splitlines()
    expected = fixture_lines()
    assert len(listing) == len(expected) == 1625
    for got, want in zip(listing, expected):
        assert got == want


@pytest.mark.parametrize("line", [
    # Facts read from upstream (plemeri/InSPyReNet, plemeri/transparent-background):
    # Swin-B window 12 -> (2*12-1)^2 = 529 bias rows, heads 4/8/16/32, depths 2/2/18/2.
    "backbone.patch_embed.proj.weight [128, 3, 4, 4] float32",
    "backbone.layers.0.blocks.0.attn.relative_position_bias_table [529, 4] float32",
    "backbone.layers.0.blocks.0.attn.relative_position_index [144, 144] int64",
    "backbone.layers.2.blocks.17.attn.relative_position_bias_table [529, 16] float32",
    "backbone.layers.3.blocks.1.attn.relative_position_bias_table [529, 32] float32",
    "backbone.layers.0.downsample.reduction.weight [256, 512] float32",
    "backbone.layers.2.downsample.norm.weight [2048] float32",
    "backbone.layers.3.blocks.1.mlp.fc1.weight [4096, 1024] float32",
    "backbone.norm0.weight [128] float32",
    "backbone.norm3.bias [1024] float32",
    # PAA_e / PAA_kernel: Conv2d(bias=False) + BatchNorm, axial attention with gamma;
    # conv1 (1 x k) follows conv0 (in -> 64), so it is 64 -> 64.
    "context1.branch1.conv1.conv.weight [64, 64, 1, 3] float32",
    "context5.branch3.conv2.conv.weight [64, 64, 7, 1] float32",
    "context5.branch3.conv3.conv.weight [64, 64, 3, 3] float32",
    "context3.branch2.Hattn.gamma [1] float32",
    "context3.branch2.Hattn.query_conv.conv.weight [8, 64, 1, 1] float32",
    "context3.conv_cat.bn.num_batches_tracked [] int64",
    # PAA_d: input depth*3, conv5 without BatchNorm and without bias.
    "decoder.conv1.conv.weight [64, 192, 3, 3] float32",
    "decoder.conv5.conv.weight [1, 64, 3, 3] float32",
    # SICA: thresholds; lthreshold only where lmap_in (attention0, attention1).
    "attention0.threshold [1] float32",
    "attention0.lthreshold [1] float32",
    "attention1.conv_out2.conv.weight [64, 192, 3, 3] float32",
    "attention2.conv_query.0.conv.weight [64, 128, 3, 3] float32",
    "attention2.conv_out4.bn.running_var [1] float32",
])
def test_upstream_facts(line):
    assert line in set(fixture_lines())


def test_no_lthreshold_without_lmap():
    assert not any(l.startswith("attention2.lthreshold") for l in fixture_lines())
    assert not any(l.startswith("decoder.conv5.bn") or l.startswith("decoder.conv5.conv.bias")
                   for l in fixture_lines())


def test_supported_sizes():
    assert valid_size(1024, 1024) is None and valid_size(384, 384) is None and valid_size(64, 64) is None
    assert valid_size(1000, 1000) is not None and valid_size(32, 32) is not None


# -- (2) the inference form: same output, fewer passes -------------------------------------

def random_model(size=SIZE, seed=SEED):
    return randomize_(inspyrenet_swinb((size, size)), seed).eval()


@pytest.mark.parametrize("h,w,shift", [(16, 16, 6), (16, 16, 0), (24, 24, 6), (5, 7, 6), (12, 12, 6)])
def test_window_gather_index_is_pad_roll_and_partition(h, w, shift):
    """The one-gather window partition moves exactly the elements that zero padding,
    the cyclic shift and the split into windows moved, and the way back inverts it."""
    window, c = 12, 3
    x = torch.arange(2 * h * w * c, dtype=torch.float32).view(2, h * w, c) + 1
    pb, pr = (window - h % window) % window, (window - w % window) % window
    grid = F.pad(x.view(2, h, w, c), (0, 0, 0, pr, 0, pb))
    if shift:
        grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
    want = swin.to_windows(grid, window)
    to_win, from_win = swin.window_gather_index(h, w, window, shift)
    padded = F.pad(x, (0, 0, 0, 1)) if to_win.shape[0] != h * w else x
    got = padded.index_select(1, to_win).view(-1, window * window, c)
    assert torch.equal(got, want)
    assert torch.equal(got.view(2, -1, c).index_select(1, from_win), x)


@pytest.mark.parametrize("c,h,w", [(8, 4, 6), (8, 3, 5)])  # c divides h*w; it does not
def test_context_sums_read_the_map_in_nchw_order_from_either_layout(c, h, w):
    """SICA's sums reinterpret the map's NCHW element order (upstream's reshape);
    the split by pixel rows must give that in NCHW and NHWC memory alike."""
    gen = torch.Generator().manual_seed(5)
    f = torch.randn(2, c, h, w, generator=gen, dtype=torch.float64)
    prob = torch.rand(2, 5, h * w, generator=gen, dtype=torch.float64)
    want = torch.bmm(prob, f.reshape(2, h * w, c))
    for mf in (torch.contiguous_format, torch.channels_last):
        got = model_module.context_sums(prob, f.contiguous(memory_format=mf))
        assert got.shape == (2, 5, c)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c,h,w", [(8, 4, 6), (8, 3, 5)])
def test_context_sums_of_a_reduced_precision_map_come_out_in_float32(c, h, w):
    """The sums run over a whole stage map: whatever the map's dtype, they are added
    up in float32 (fp16 could not hold them), from products in the map's dtype."""
    gen = torch.Generator().manual_seed(6)
    f = 50 * torch.rand(1, c, h, w, generator=gen, dtype=torch.float64)
    prob = torch.rand(1, 5, h * w, generator=gen, dtype=torch.float64)
    want = torch.bmm(prob, f.reshape(1, h * w, c))
    got = model_module.context_sums(prob.bfloat16(), f.bfloat16().contiguous(memory_format=torch.channels_last))
    assert got.dtype == torch.float32
    assert float(((got.double() - want).abs() / want.abs()).max()) < 0.02  # bfloat16 inputs: 8-bit mantissas


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape,size", [((2, 5, 7, 9), (14, 18)), ((1, 64, 16, 16), (32, 32)),
                                        ((1, 6, 12, 10), (5, 7)), ((1, 3, 1, 4), (2, 8))])
def test_resize_by_products_gives_interpolate_output_in_nhwc_order(shape, size, align_corners):
    """resize_bilinear's matrix products (NHWC maps of several channels): up and down,
    either corner rule, a batch of two; the result stays NHWC-ordered."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last)
    want = F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)
    got = model_module.resize_bilinear(x, size[0], size[1], align_corners, True)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_resize_bilinear_leaves_other_maps_to_interpolate():
    """NCHW maps, one-channel maps and the switch turned off take F.interpolate itself:
    bit for bit the same result."""
    gen = torch.Generator().manual_seed(10)
    nchw = torch.randn(1, 8, 6, 6, generator=gen)
    one = torch.randn(1, 1, 6, 6, generator=gen).contiguous(memory_format=torch.channels_last)
    nhwc = torch.randn(1, 8, 6, 6, generator=gen).contiguous(memory_format=torch.channels_last)
    for x, on in ((nchw, True), (one, True), (nhwc, False)):
        want = F.interpolate(x, size=(12, 12), mode="bilinear", align_corners=False)
        assert torch.equal(model_module.resize_bilinear(x, 12, 12, False, on), want)


@pytest.mark.parametrize("b,h,w,axis", [(1, 6, 6, 6), (2, 6, 6, 6), (1, 4, 6, 6), (1, 4, 6, 4)])
def test_axial_mix_gives_upstreams_view_product(b, h, w, axis):
    """axial_mix: upstream's bmm over the (b, -1, axis) view of an NCHW map, for NCHW
    and NHWC value maps, one image or two; a row length other than the map's width
    (the 'h' mode on a non-square map) reinterprets memory, and must still match."""
    gen = torch.Generator().manual_seed(11)
    v = torch.randn(b, 8, h, w, generator=gen, dtype=torch.float64)
    attn = torch.softmax(torch.randn(b, axis, axis, generator=gen, dtype=torch.float64), -1)
    want = torch.bmm(v.reshape(b, -1, axis), attn.permute(0, 2, 1)).view(b, 8, h, w)
    for mf in (torch.contiguous_format, torch.channels_last):
        got = model_module.axial_mix(v.contiguous(memory_format=mf), attn, axis, True)
        assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_rewrites_keep_the_output_in_either_layout_one_image_or_two():
    """The exporter's decoder rewrites (InSPyReNet.set_rewrites) change how the map is
    computed, not what: with all of them on an NHWC module gives, image by image, the
    output of the module without them in NCHW, also traced at one image and run on two."""
    model = random_model().fold_batchnorm().prepare(SIZE, SIZE)
    a = example_input()
    b = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(8))
    x = torch.cat([a, b])
    with torch.no_grad():
        want = model.set_rewrites(())(x)
        nhwc = model.set_rewrites().to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        got = nhwc(xc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(nhwc, xc[:1], check_trace=False)
        got_traced = traced(xc)
    assert float((got - want).abs().max()) <= 1e-5
    assert float((got_traced - want).abs().max()) <= 1e-5
    assert float((want[0] - want[1]).abs().max()) > 1e-3  # the images differ, so the check can fail
    with pytest.raises(ValueError):
        model.set_rewrites(("resize", "fusion"))


def test_exporter_rewrites_option():
    assert export_inspyrenet.parse_rewrites("all") == ("resize", "context", "axial")
    assert export_inspyrenet.parse_rewrites("none") == ()
    assert export_inspyrenet.parse_rewrites("context,axial") == ("context", "axial")
    with pytest.raises(SystemExit):
        export_inspyrenet.parse_rewrites("context,fusion")


def test_batchnorm_folding_keeps_the_output():
    model = random_model()
    x = example_input()
    with torch.no_grad():
        want = model.prepare(SIZE, SIZE)(x)
        n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        got = model.fold_batchnorm().prepare(SIZE, SIZE)(x)
    assert n_bn > 100
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert float((got - want).abs().max()) <= 1e-5


def test_prepared_constants_match_computing_them_on_the_fly():
    """prepare() caches masks, window indices and position biases; an unprepared
    module (or another input size) computes them per call: same result."""
    model = random_model().fold_batchnorm()
    x = example_input()
    with torch.no_grad():
        on_the_fly = model(x)
        prepared = model.prepare(SIZE, SIZE)(x)
    assert model.backbone.layers[0].blocks[0].attn.position_bias.dim() == 4
    assert torch.equal(prepared, on_the_fly)


def test_channels_last_gives_the_same_output():
    """The manifest asks GPUs for NHWC: the module's NCHW-order reinterpretations
    (axial attention, SICA) must give the same map in either memory order."""
    model = random_model().fold_batchnorm().prepare(SIZE, SIZE)
    x = example_input()
    with torch.no_grad():
        nchw = model(x)
        nhwc = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert float((nhwc - nchw).abs().max()) <= 1e-5


def reference_sdpa(calls):
    """softmax(q k^T / sqrt(d) + attn_mask) v, PyTorch 2's scaled_dot_product_attention
    for a float mask, written out (Debian's torch 1.13 has no such function)."""
    def sdpa(q, k, v, attn_mask=None):
        calls.append(tuple(attn_mask.shape))
        attn = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5 + attn_mask
        return attn.softmax(dim=-1) @ v
    return sdpa


def test_sdpa_attention_gives_the_matmul_output_for_one_image_and_a_batch(monkeypatch):
    """The "sdpa" form hands scaled_dot_product_attention the position bias (plain
    windows) or bias + shifted-window mask, repeated per image of a batch: with the
    function written out, the output is the matmul form's, image by image."""
    calls = []
    monkeypatch.setattr(F, "scaled_dot_product_attention", reference_sdpa(calls), raising=False)
    model = random_model().fold_batchnorm().prepare(SIZE, SIZE).set_attention("matmul")
    a = example_input()
    b = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        want_a, want_b = model(a), model(b)
        model.set_attention("sdpa")
        got_a = model(a)
        assert len(calls) == 24  # one call a Swin block: depths 2, 2, 18, 2
        assert (1, 4, 144, 144) in calls or (4, 4, 144, 144) in calls
        got = model(torch.cat([a, b]))
        # Traced at one image (as the exporter does), the mask's repetition follows the
        # batch: its size is read from the input, not baked in.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, a, check_trace=False)
        traced_batch = traced(torch.cat([a, b]))
    assert float((got_a - want_a).abs().max()) <= 1e-5
    assert float((got[0:1] - want_a).abs().max()) <= 1e-5
    assert float((got[1:2] - want_b).abs().max()) <= 1e-5
    assert float((traced_batch - got).abs().max()) <= 1e-5
    assert float((want_a - want_b).abs().max()) > 1e-3  # the images differ, so the check can fail


def test_attention_form_falls_back_to_matmul_without_sdpa(monkeypatch):
    monkeypatch.delattr(F, "scaled_dot_product_attention", raising=False)
    assert swin.default_attention() == "matmul"
    model = random_model()
    with pytest.raises(ValueError, match="2.0"):
        model.set_attention("sdpa")
    with pytest.raises(ValueError, match="expected one of"):
        model.set_attention("flash")
    monkeypatch.setattr(F, "scaled_dot_product_attention", reference_sdpa([]), raising=False)
    assert swin.default_attention() == "sdpa"


def test_efficient_attention_needs_torch_2_1_and_says_so(monkeypatch):
    model = random_model()
    if not swin.has_efficient_attention():  # Debian's torch 1.13
        with pytest.raises(ValueError, match="2.1"):
            model.set_attention("efficient")
    monkeypatch.delattr(F, "scaled_dot_product_attention", raising=False)
    assert not swin.has_efficient_attention()
    with pytest.raises(ValueError, match="2.1"):
        model.set_attention("efficient")


@pytest.mark.skipif(not swin.has_efficient_attention(), reason="needs torch 2.1+ (runs on the GPU machine)")
def test_efficient_attention_traced_gives_the_sdpa_output_on_cpu_and_cuda():
    """The "efficient" form is the "sdpa" formula: on the CPU its traced file takes
    scaled_dot_product_attention itself; on CUDA (fp16, NHWC, as libpetmatte runs it)
    the memory-efficient kernel, within fp16 rounding of the sdpa form's output."""
    model = random_model().fold_batchnorm().prepare(SIZE, SIZE).set_attention("sdpa")
    a = example_input()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        for device in devices:  # the CPU first: the model is converted for CUDA in place
            x = a
            if device == "cuda":
                model = model.to(device="cuda", dtype=torch.float16, memory_format=torch.channels_last)
                x = a.to(device="cuda", dtype=torch.float16).contiguous(memory_format=torch.channels_last)
            want = model.set_attention("sdpa")(x).float()
            traced = torch.jit.trace(model.set_attention("efficient"), x, check_trace=False)
            got = traced(x).float()
            assert "_scaled_dot_product_efficient_attention" in str(traced.inlined_graph)
            tolerance = (2e-2 if device == "cuda" else 1e-5) * max(1.0, float(want.abs().max()))
            assert float((got - want).abs().max()) <= tolerance, device


# -- (3) export -> load -> run ------------------------------------------------------------

def example_input():
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(path, manifest, eager model) for a random-weights export at SIZE."""
    torch.set_grad_enabled(False)
    path = tmp_path_factory.mktemp("inspyrenet") / f"inspyrenet_random_{SIZE}.pt"
    args = argparse.Namespace(
        checkpoint=None, random_weights=True, seed=SEED, size=SIZE, base_size=None, name=None,
        attention="auto", rewrites="all")
    model, size, manifest = export_inspyrenet.build(args)
    assert size == SIZE
    export_inspyrenet.export(model, size, manifest, str(path), verify=False, log=lambda *a: None)
    return path, manifest, model


def test_random_weights_are_deterministic(exported):
    _, _, model = exported  # randomize_(seed=SEED) and fold_batchnorm() by the exporter
    again = random_model().fold_batchnorm().state_dict()
    assert model.state_dict().keys() == again.keys()
    for name, t in model.state_dict().items():
        assert torch.equal(t, again[name]), name
    key = "backbone.layers.2.blocks.5.attn.qkv.weight"
    assert not torch.equal(random_model(seed=SEED + 1).state_dict()[key], model.state_dict()[key])


def test_export_load_run(exported):
    path, manifest, model = exported
    files = {"petmatte.json": ""}
    loaded = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    m = json.loads(files["petmatte.json"])
    assert m == json.loads(manifest)
    assert m["format"] == "petmatte-manifest" and m["version"] == 1
    assert m["input"] == {"width": SIZE, "height": SIZE, "mean": list(MEAN), "std": list(STD)}
    assert m["output"] == {"activation": "probability", "normalize": "minmax", "resize": "bilinear",
                           "align_corners": True}
    assert m["random_weights"] is True and len(m["name"].encode()) <= 63
    assert m["attention"] == swin.default_attention()  # what this torch can write

    x = example_input()
    with torch.no_grad():
        want = model(x)
        got = loaded(x)
    assert tuple(got.shape) == (1, 1, SIZE, SIZE)
    assert torch.isfinite(got).all()
    assert float((got - want).abs().max()) <= 1e-5
    # Probabilities, and not a degenerate map: random weights still give structure.
    assert float(got.min()) >= 0.0 and float(got.max()) <= 1.0
    assert float(got.std()) > 1e-3


def test_exported_file_follows_the_weights_dtype(exported):
    """libpetmatte converts a file's floating-point weights and buffers to fp16/bf16
    and feeds that dtype; every layer must follow it, apart from SICA's deliberate
    float32 context branch. float64 stands in for them on the CPU (Debian's torch
    lacks some half-precision CPU kernels): a layer left in float32 by the trace (a
    no-op .to() at trace time makes later uses of its input float32 too) fails with
    'Input type ... and weight type ... should be the same'."""
    path, _, _ = exported
    traced = torch.jit.load(str(path), map_location="cpu").eval()
    x = example_input()
    with torch.no_grad():
        want = traced(x)
        for t in list(traced.parameters()) + list(traced.buffers()):
            if t.is_floating_point():
                t.data = t.data.double()
        got = traced(x.double())
    assert got.dtype == torch.float64
    assert float((got.float() - want).abs().max()) <= 1e-5


def test_exported_file_keeps_the_fused_cuda_convolutions(exported):
    """SICA's conv + bias + ReLU layers (five a SICA, three SICAs) run as one cuDNN call
    on CUDA; the file carries that branch beside the plain one the CPU takes."""
    path, _, _ = exported
    graph = torch.jit.load(str(path), map_location="cpu").inlined_graph
    assert len(graph.findAllNodes("aten::cudnn_convolution_relu")) == 15
    assert len(graph.findAllNodes("prim::is_cuda")) >= 15


def test_exported_file_keeps_the_pointwise_products(exported):
    """The folded 1x1 convolutions without ReLU run as matrix products over the
    pixels on CUDA (pointwise_conv); the file carries that branch beside the
    convolution the CPU takes, once per such layer."""
    path, _, model = exported
    pointwise = [m for m in model.modules()
                 if isinstance(m, model_module.ConvBN) and m.pointwise_as_product and m.relu is None]
    assert len(pointwise) == 124  # per PAA encoder 2 + 3 x (1 + 2 x 3), five encoders; decoder 6; SICA 3
    swin_linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    graph = torch.jit.load(str(path), map_location="cpu").inlined_graph
    assert len(graph.findAllNodes("aten::linear")) == swin_linears + len(pointwise)
    # the CPU branch: pointwise_conv's and conv_bias_relu's conv2d (15) beside them
    assert len(graph.findAllNodes("aten::conv2d")) == len(pointwise) + 15


def test_graph_is_device_and_dtype_neutral(exported):
    """libpetmatte converts precision with module.to(fp16/bf16) and moves the module to
    CUDA at load. A traced factory call (zeros_like, arange, ...) records a fixed
    device and dtype, and a float tensor baked into the graph would not follow .to():
    neither may be in the file. (0-dim float constants are Python scalars such as
    head_dim ** -0.5; type promotion lets the other operand's dtype win.)"""
    path, _, _ = exported
    graph = torch.jit.load(str(path), map_location="cpu").inlined_graph
    for node in graph.nodes():
        for value in node.inputs():
            assert value.type().kind() != "DeviceObjType", f"device-pinned op: {node}"
    for node in graph.findAllNodes("prim::Constant"):
        if node.output().type().kind() == "TensorType" and node.hasAttribute("value"):
            v = node.t("value")
            assert not (v.is_floating_point() and v.dim() > 0), f"float tensor constant: {node}"


# -- (4) the file through libpetmatte -----------------------------------------------------
# Through the Python binding (bindings/python), whose structs test_binding.py checks
# against the header.


def open_cpu(path, **params):
    """A Matte for the file: fp32 on the CPU, one warm-up run, plus any other Matte
    arguments; skips when PETMATTE_LIBRARY is unset."""
    lib_path = os.environ.get("PETMATTE_LIBRARY")
    if not lib_path:
        pytest.skip("PETMATTE_LIBRARY is not set (ctest sets it to the built libpetmatte.so)")
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    from petmatte import Matte
    return Matte(path, device="cpu", precision="fp32",
                 tune={"warmup_min_runs": 1, "warmup_max_runs": 1}, lib_path=lib_path, **params)


def synthetic_image(width, height):
    """A smooth RGB scene with a disc, as HxWx3 uint8."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    disc = ((xx - 0.55 * width) ** 2 + (yy - 0.45 * height) ** 2) < (0.3 * min(width, height)) ** 2
    r = 40 + 180 * xx / max(width - 1, 1)
    g = 60 + 150 * yy / max(height - 1, 1)
    b = 90 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    img = np.stack([r, g, b], axis=-1)
    img[disc] = img[disc] * 0.3 + np.array([230.0, 40.0, 60.0]) * 0.7
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def reference_matte(model, rgb):
    """libpetmatte's documented pipeline, in Python: RGB/255, (antialiased when
    shrinking) bilinear resize to the input size, ImageNet normalisation, forward,
    min-max, bilinear align_corners=True back to the image size, *255, round."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div(255.0)
    if (h, w) != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False,
                          antialias=h > SIZE or w > SIZE)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        p = model(x).float()
    p = (p - p.min()) / (p.max() - p.min() + 1e-8)
    if (h, w) != (SIZE, SIZE):
        p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=True)
    return p.clamp(0, 1).mul(255).round().to(torch.uint8).reshape(h, w).numpy()


def test_library_matches_python(exported):
    path, _, model = exported
    with open_cpu(path) as m:
        m.warmup()
        # Exactly the input size (no resampling), then a larger non-square image
        # (antialiased shrink in, align_corners upsampling out).
        for w, h in ((SIZE, SIZE), (2 * SIZE, SIZE + 32)):
            rgb = synthetic_image(w, h)
            got = m.remove_bg(rgb, output="mask")
            assert got.shape == (h, w) and got.dtype == np.uint8
            want = reference_matte(model, rgb)
            diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
            assert int(diff.max()) <= 1, f"{w}x{h}: max |library - python| = {int(diff.max())} levels"
            assert int(want.max()) - int(want.min()) > 50  # a matte with structure, not a flat one


def test_exported_file_batches_images_independently(exported):
    """The traced file runs any batch size, each image as it would alone: what
    pm_params.max_batch relies on (warm-up checks it too, below)."""
    path, _, _ = exported
    traced = torch.jit.load(str(path)).eval()
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, 3, SIZE, SIZE, generator=gen)
    with torch.no_grad():
        together = traced(x)
        for i in range(3):
            alone = traced(x[i:i + 1])
            assert torch.allclose(together[i:i + 1], alone, atol=1e-4, rtol=1e-4)
    with open_cpu(path, max_batch=2) as m:
        assert m.warmup().max_batch == 2  # the library's own batch check passed
