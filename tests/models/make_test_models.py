#!/usr/bin/python3
"""Writes the tiny TorchScript models the tests use, into the folder given.

Each model's output is a known function of its input, so tests can assert exact
pixels. Run with Debian's torch: /usr/bin/python3 make_test_models.py OUTDIR
"""
import json
import os
import sys
import zipfile

import torch

SIZE = 32


def manifest(name, size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), activation="probability",
             normalize="none", align_corners=True, random_weights=False, **extra):
    m = {
        "format": "petmatte-manifest", "version": 1, "name": name,
        "input": {"width": size, "height": size, "mean": list(mean), "std": list(std)},
        "output": {"activation": activation, "normalize": normalize, "resize": "bilinear",
                   "align_corners": align_corners},
        "random_weights": random_weights,
    }
    m.update(extra)
    return json.dumps(m)


class Red(torch.nn.Module):
    """alpha = red channel (mean 0, std 1: the input is rgb/255 unchanged)."""

    def forward(self, x):
        return x[:, 0:1]


class SigmoidOfRed(torch.nn.Module):
    def forward(self, x):
        return torch.sigmoid(x[:, 0:1])


class RedImageNet(torch.nn.Module):
    """Undoes ImageNet normalisation of the red channel: for manifest-less tests."""

    def forward(self, x):
        return x[:, 0:1] * 0.229 + 0.485


class RedLogit(torch.nn.Module):
    """A logit whose sigmoid is known: 8 * (red - 0.5)."""

    def forward(self, x):
        return (x[:, 0:1] - 0.5) * 8.0


class RedTuple(torch.nn.Module):
    """Returns (matte, side output) like multi-output saliency models."""

    def forward(self, x):
        return x[:, 0:1], x[:, 1:2] * 0.0


class WrongShape(torch.nn.Module):
    def forward(self, x):
        return x  # three channels: not a matte


class NaNOutput(torch.nn.Module):
    def forward(self, x):
        return x[:, 0:1] * float("nan")


class ThrowsOnFlatImage(torch.nn.Module):
    """Works in warm-up (textured input) but raises on a single-colour image."""

    def forward(self, x):
        if bool(x.max() == x.min()):
            raise RuntimeError("test model refuses a flat image")
        return x[:, 0:1]


class MixesBatch(torch.nn.Module):
    """Red alone, but half of it is the batch's mean red: images of a batch are not
    independent (like a model with batch-wide normalisation)."""

    def forward(self, x):
        red = x[:, 0:1]
        return red * 0.5 + red.mean(dim=0, keepdim=True) * 0.5


class ThrowsOnBlackInBatch(torch.nn.Module):
    """Red, but raises when any image of the batch is all black: one bad image fails
    the whole batched pass."""

    def forward(self, x):
        if bool((x.flatten(1).amax(dim=1) == 0).any()):
            raise RuntimeError("test model refuses a black image")
        return x[:, 0:1]


class Slow(torch.nn.Module):
    """Some real work (a few convolutions at 96x96) so timing and overlap are observable."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        layers = [torch.nn.Conv2d(3, 24, 3, padding=1)]
        for _ in range(6):
            layers += [torch.nn.ReLU(), torch.nn.Conv2d(24, 24, 3, padding=1)]
        layers += [torch.nn.ReLU(), torch.nn.Conv2d(24, 1, 3, padding=1)]
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x):
        return torch.sigmoid(self.body(x))


class ConvBatchNorm(torch.nn.Module):
    """Convolution, BatchNorm (non-trivial running statistics), ReLU, convolution,
    sigmoid: what freezing folds (the BatchNorm into the first convolution)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.out = torch.nn.Conv2d(8, 1, 3, padding=1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        return torch.sigmoid(self.out(torch.relu(self.bn(self.conv(x)))))


class BusyRed(torch.nn.Module):
    """alpha = red, exactly, after a fixed amount of useless arithmetic: a cut-out
    that keeps its work slot busy long enough to fill a server's queue behind it."""

    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds

    def forward(self, x):
        y = x[:, 0]
        for _ in range(self.rounds):
            y = torch.tanh(y @ y)
        return x[:, 0:1] + y.mean() * 0.0


@torch.jit.interface
class PicksChannel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pass


class PickRed(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1]


class PickGreen(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1:2]


class PicksByName(torch.nn.Module):
    """Red, through a submodule looked up by name in a ModuleDict: TorchScript cannot
    freeze that (prim::ModuleContainerIndex), so this is a model freezing refuses."""

    def __init__(self):
        super().__init__()
        self.channels = torch.nn.ModuleDict({"red": PickRed(), "green": PickGreen()})
        self.which = "red"

    def forward(self, x):
        picked: PicksChannel = self.channels[self.which]
        return picked.forward(x)


def save_traced(module, path, size=SIZE, extra=None):
    example = torch.rand(1, 3, size, size)
    traced = torch.jit.trace(module.eval(), example, check_trace=False)
    files = {"petmatte.json": extra} if extra is not None else {}
    torch.jit.save(traced, path, _extra_files=files)


def save_scripted(module, path, extra=None):
    scripted = torch.jit.script(module.eval())
    files = {"petmatte.json": extra} if extra is not None else {}
    torch.jit.save(scripted, path, _extra_files=files)


def rewrite_code(path, old, new):
    """Replaces old by new in the TorchScript source the archive holds (code/*.py)."""
    with zipfile.ZipFile(path) as z:
        entries = [(info, z.read(info.filename)) for info in z.infolist()]
    if not any(old in data for info, data in entries if info.filename.endswith(".py")):
        raise SystemExit(f"{path}: {old!r} is not in its code")
    with zipfile.ZipFile(path, "w") as z:
        for info, data in entries:
            z.writestr(info, data.replace(old, new) if info.filename.endswith(".py") else data)


def main(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)
    save_traced(Red(), p("red32.pt"), extra=manifest("red32"))
    save_traced(Red(), p("red32_align_false.pt"), extra=manifest("red32-af", align_corners=False))
    save_traced(RedImageNet(), p("red_no_manifest.pt"))
    save_traced(RedLogit(), p("red32_logit.pt"), extra=manifest("red32-logit", activation="logit"))
    save_traced(RedTuple(), p("red32_tuple.pt"), extra=manifest("red32-tuple"))
    save_traced(Red(), p("red32_minmax.pt"), extra=manifest("red32-minmax", normalize="minmax"))
    save_traced(Red(), p("red32_random.pt"), extra=manifest("red32-random", random_weights=True))
    save_traced(WrongShape(), p("wrong_shape.pt"), extra=manifest("wrong-shape"))
    save_traced(NaNOutput(), p("nan_output.pt"), extra=manifest("nan"))
    save_scripted(ThrowsOnFlatImage(), p("throws_on_flat.pt"), extra=manifest("throws"))
    save_traced(Slow(), p("slow96.pt"), size=96, extra=manifest("slow96", size=96))
    save_scripted(BusyRed(40000), p("busy_red32.pt"), extra=manifest("busy-red32"))
    save_traced(MixesBatch(), p("mixes_batch.pt"), extra=manifest("mixes-batch"))
    save_scripted(ThrowsOnBlackInBatch(), p("throws_on_black.pt"), extra=manifest("throws-black"))
    # The same code, declared safe to capture by its manifest (the host's word over the check).
    save_scripted(ThrowsOnBlackInBatch(), p("throws_on_black_graph_safe.pt"),
                  extra=manifest("throws-black-graph-safe", gpu={"graph_safe": True}))
    save_traced(ConvBatchNorm(), p("conv_bn.pt"), extra=manifest("conv-bn"))
    save_scripted(PicksByName(), p("picks_by_name.pt"), extra=manifest("picks-by-name"))
    save_traced(Red(), p("bad_json.pt"), extra="{\"name\": \"bad\", ")
    save_traced(Red(), p("absurd_size.pt"), extra=manifest("absurd", size=100000))
    save_traced(Red(), p("future_version.pt"), extra=json.dumps({"format": "petmatte-manifest", "version": 99}))

    # A file from a newer torch: its code calls an operator this libtorch does not have
    # (as InSPyReNet exports from torch 2.x call scaled_dot_product_attention).
    save_scripted(SigmoidOfRed(), p("future_op.pt"), extra=manifest("future-op"))
    rewrite_code(p("future_op.pt"), b"torch.sigmoid(", b"torch.petmatte_future_op(")

    # Files that are not models.
    open(p("empty.pt"), "wb").close()
    with zipfile.ZipFile(p("not_torchscript.pt"), "w") as z:
        z.writestr("archive/hello.txt", "a zip, but not TorchScript")
    with open(p("red32.pt"), "rb") as f:
        whole = f.read()
    with open(p("truncated.pt"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    with open(p("random_bytes.pt"), "wb") as f:
        f.write(bytes((i * 131 + 7) % 256 for i in range(4096)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_test_models.py OUTDIR")
    main(sys.argv[1])
