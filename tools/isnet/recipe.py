"""Pinned facts about the default model and the manifest written into it.

Every value here was checked by hand (docs/models.md, "IS-Net (default model)"):
changing the package version means re-checking all of them.
"""
import hashlib
import json

PACKAGE = "@imgly/background-removal-data"
VERSION = "1.4.5"
SPEC = PACKAGE + "@" + VERSION

# `npm view @imgly/background-removal-data@1.4.5 dist.integrity`, checked against the
# sha512 of the tarball that `npm pack` wrote. Pinned so that a registry (or mirror, or
# cache) answering differently is detected instead of trusted.
TARBALL_INTEGRITY = ("sha512-iRXZpPd7YirbJ4eOZ3SlvbdJkAc/LxVjzWLMHOezmRrVThPJPdPc+Y2kHEAVF"
                     "EVvpDIuvBDyOfTTFBSJT2QR5w==")
TARBALL_SIZE = 136455985
TARBALL_NAME = "imgly-background-removal-data-1.4.5.tgz"  # what `npm pack` names it

RESOURCE = "/models/medium"
ONNX_SIZE = 88188479
# sha256 of the reassembled /models/medium (each 4 MiB chunk is also checked against
# its own name, which is its sha256).
ONNX_SHA256 = "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
ONNX_CACHE_NAME = "isnet-medium-1.4.5.onnx"

INPUT_NAME = "input"
OUTPUT_NAME = "output"
SIZE = 1024

# Bumped whenever the converter's output for the same ONNX could change.
CONVERTER_VERSION = 1

MODEL_NAME = "isnet-general"
DEFAULT_OUT = "models/isnet-general.pt"


def manifest_dict():
    """The petmatte manifest (docs/manifest.md) for the converted model."""
    return {
        "format": "petmatte-manifest",
        "version": 1,
        "name": MODEL_NAME,
        "input": {
            "width": SIZE,
            "height": SIZE,
            # IS-Net's training normalisation: xuebinqin/DIS IS-Net/train_valid_inference_main.py
            # builds every loader with GOSNormalize([0.5,0.5,0.5],[1.0,1.0,1.0]) applied to
            # rgb/255 (and IS-Net/Inference.py does the same). imgly's JS for these exact
            # weights uses (v - 128) / 256 on 0..255, i.e. mean 0.50196, std 1.0039: the same
            # to within 0.4 %.
            "mean": [0.5, 0.5, 0.5],
            "std": [1.0, 1.0, 1.0],
        },
        "output": {
            # The graph's first output is Sigmoid(Resize(side1)): already a probability.
            "activation": "probability",
            # No per-image stretch: the sigmoid output is used as is, as imgly's pipeline for
            # these weights does (alpha = output * 255). A min-max stretch would turn the
            # near-zero matte of a picture with no subject into a full-range one.
            "normalize": "none",
            "resize": "bilinear",
            # DIS's Inference.py returns the matte with F.upsample(..., mode='bilinear'),
            # whose default is align_corners=False.
            "align_corners": False,
        },
        # A conv net: NHWC is faster, on the GPU (and smaller) and on the CPU (oneDNN's
        # NHWC kernels, and bf16 on AMX); libpetmatte applies it on both when
        # PM_TUNE_CHANNELS_LAST is left on auto. Three forward streams: at batch 1 IS-Net
        # leaves part of a large GPU idle, so concurrent callers' passes overlap on
        # streams, for one graph's activations a stream and a little more latency for a
        # lone caller.
        "gpu": {"channels_last": True, "forward_streams": 3},
        # Checked in bf16 on an AMX CPU: the cat photo's matte within 0.21 of an 8-bit
        # level of fp32's on average, 5 at most (docs/benchmarks.md).
        "cpu": {"bf16": True},
        "random_weights": False,
        "source": ("IS-Net general-use weights (xuebinqin/DIS), fp16 ONNX '/models/medium' from "
                   "npm " + SPEC + " (tarball " + TARBALL_INTEGRITY + ", onnx sha256 "
                   + ONNX_SHA256 + "), converted to fp32 TorchScript by "
                   "tools/setup_default_model.py"),
        "license": ("MIT (IS-Net weights, https://github.com/xuebinqin/DIS; named MIT in the "
                    "package's ThirdPartyLicenses.json)"),
    }


def recipe_stamp():
    """A hash of everything the output depends on; recorded in the model's manifest
    ("build"."recipe") so that an up-to-date model is recognised without re-converting."""
    text = json.dumps({"integrity": TARBALL_INTEGRITY, "onnx": ONNX_SHA256,
                       "converter": CONVERTER_VERSION, "manifest": manifest_dict()},
                      sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_text():
    m = manifest_dict()
    m["build"] = {"recipe": recipe_stamp(), "converter_version": CONVERTER_VERSION,
                  "package": SPEC, "onnx_sha256": ONNX_SHA256}
    return json.dumps(m, indent=2, sort_keys=False)
