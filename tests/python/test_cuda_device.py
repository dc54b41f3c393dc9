"""The CUDA path against the CPU path, on a machine with a GPU (skipped without one,
as on CI): exact masks from the tiny red-channel model, the same masks as the CPU for
resized images whatever the copy route (pinned staging up to 16 MiB, pageable past
it), a model whose output is NaN failing every call with ModelError, and CUDA graphs:
replayed for a graph-safe model, off by tune key, and never used for a model that
raises on some inputs.

Run on a GPU machine with a CUDA build:
    PETMATTE_LIBRARY=build-gpu/lib/libpetmatte.so PETMATTE_TEST_MODELS=DIR \\
        PYTHONPATH=bindings/python python3 -m pytest -q tests/python/test_cuda_device.py
(DIR written by tests/models/make_test_models.py).
"""
import os
from pathlib import Path

import numpy as np
import pytest

LIB = os.environ.get("PETMATTE_LIBRARY")
MODELS = Path(os.environ.get("PETMATTE_TEST_MODELS", "/nonexistent"))
if not LIB or not (MODELS / "red32.pt").is_file():
    pytest.skip("needs PETMATTE_LIBRARY and PETMATTE_TEST_MODELS", allow_module_level=True)

import petmatte  # noqa: E402

if petmatte.cuda_device_count() == 0:
    pytest.skip("no CUDA device", allow_module_level=True)


def image(h, w, c, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("channels", [3, 4])
def test_mask_at_the_model_size_is_the_red_channel_exactly(precision, channels):
    with petmatte.Matte(MODELS / "red32.pt", device="cuda:0", precision=precision) as m:
        for seed in range(3):  # repeated calls reuse the staging buffers
            img = image(32, 32, channels, seed)
            mask = m.remove_bg(img, output="mask", keep_input_alpha=False)
            assert np.array_equal(mask, img[..., 0])


@pytest.mark.parametrize("size", [(64, 48), (1000, 1500), (2000, 3000)])
def test_resized_masks_match_the_cpu_within_one_level(size):
    # 2000x3000 RGB is 18 MB: uploaded from pageable memory, its 6 MB matte staged.
    img = image(*size, 3, seed=7)
    masks = []
    for device in ("cpu", "cuda:0"):
        with petmatte.Matte(MODELS / "red32.pt", device=device, precision="fp32") as m:
            masks.append(m.remove_bg(img, output="mask").astype(np.int16))
    assert masks[1].shape == size
    assert np.abs(masks[0] - masks[1]).max() <= 1


def test_nan_output_fails_every_call_with_a_model_error():
    with petmatte.Matte(MODELS / "nan_output.pt", device="cuda:0") as m:
        for _ in range(2):
            with pytest.raises(petmatte.ModelError, match="NaN"):
                m.remove_bg(image(8, 8, 3, 0), output="mask")


def test_graph_safe_model_replays_a_cuda_graph_unless_tuned_off():
    img = image(32, 32, 3, seed=1)
    for tune, graph in (({}, True), ({"cuda_graph": 0}, False)):
        with petmatte.Matte(MODELS / "red32.pt", device="cuda:0", tune=tune) as m:
            s = m.warmup()
            assert s.graph_safe == 1 and s.cuda_graph is graph, tune
            assert m.tune_get("cuda_graph") == int(graph)  # auto resolved once ready
            for _ in range(2):
                assert np.array_equal(m.remove_bg(img, output="mask"), img[..., 0])


def test_model_that_raises_on_some_inputs_runs_eagerly_and_still_raises():
    # A captured graph would replay the textured warm-up's path and skip the raise.
    with petmatte.Matte(MODELS / "throws_on_flat.pt", device="cuda:0") as m:
        s = m.warmup()
        assert s.graph_safe == 0 and not s.cuda_graph
        assert m.tune_get("cuda_graph") == 0
        for _ in range(2):
            with pytest.raises(petmatte.InferenceError, match="refuses a flat image"):
                m.remove_bg(np.full((32, 32, 3), 9, np.uint8), output="mask")  # the model's size
        img = image(32, 32, 3, seed=2)
        assert np.array_equal(m.remove_bg(img, output="mask"), img[..., 0])


def test_forward_streams_need_cuda_graphs():
    with petmatte.Matte(MODELS / "red32.pt", device="cuda:0",
                        tune={"forward_streams": 2, "cuda_graph": 0}) as m:
        with pytest.raises(petmatte.InvalidArgumentError, match="CUDA graphs"):
            m.warmup()
        m.tune_set("cuda_graph", -1)  # a failed context takes tuning again
        s = m.warmup()
        assert s.cuda_graph and s.forward_streams == 2
