"""libpetmatte's own implementation of InSPyReNet (Swin-B), state_dict-compatible
with the official checkpoints. See docs/models.md."""
from .model import (  # noqa: F401
    KNOWN_CHECKPOINTS, InSPyReNet, extract_state_dict, inspyrenet_swinb, randomize_,
    state_dict_listing, valid_size)
from .swin import SwinTransformer, swin_b  # noqa: F401
