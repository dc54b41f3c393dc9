#!/usr/bin/python3
"""Writes the BiRefNet state_dict fixture: every key, shape and dtype of the module
that checkpoints load into (before BatchNorm folding), and the training-only heads a
checkpoint also holds, which the loader drops.

    /usr/bin/python3 tools/make_birefnet_keys.py                      # Swin-L, the general configuration
    /usr/bin/python3 tools/make_birefnet_keys.py --backbone swin_v1_t --out ...

tests/python/test_birefnet.py builds the module and compares it with the committed
file (tests/python/fixtures/birefnet_swin_v1_l_keys.json); regenerate it only for a
deliberate change of the architecture, and check the difference against upstream.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from birefnet import BACKBONES, BiRefNet, state_dict_entries  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixture(backbone: str) -> dict:
    model = BiRefNet(backbone)
    return {
        "generator": "tools/make_birefnet_keys.py",
        "architecture": f"BiRefNet {backbone}, general configuration (github.com/ZhengPeng7/BiRefNet config.py)",
        "backbone": backbone,
        "inference": state_dict_entries(model),
        "training_only": [[k, list(v)] for k, v in model.training_only_keys().items()],
    }


def dumps(data: dict) -> str:
    """One entry a line, so that a change shows as a readable diff."""
    lines = ["{"]
    for key in ("generator", "architecture", "backbone"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(data[key])},")
    for key in ("inference", "training_only"):
        rows = [f"    {json.dumps(row)}" for row in data[key]]
        lines.append(f"  {json.dumps(key)}: [")
        lines.append(",\n".join(rows))
        lines.append("  ]," if key == "inference" else "  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="swin_v1_l", choices=sorted(BACKBONES))
    p.add_argument("--out", help="default: tests/python/fixtures/birefnet_<backbone>_keys.json")
    args = p.parse_args()
    out = args.out or os.path.join(ROOT, "tests", "python", "fixtures", f"birefnet_{args.backbone}_keys.json")
    text = dumps(fixture(args.backbone))
    json.loads(text)  # well-formed
    with open(out, "w") as f:
        f.write(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
