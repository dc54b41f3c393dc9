"""libpetmatte's own implementation of BiRefNet (Swin backbones), state_dict-compatible
with the published checkpoints. See docs/models.md."""
from .deform_conv import deform_conv2d  # noqa: F401
from .model import (  # noqa: F401
    BACKBONES, BiRefNet, detect_backbone, extract_state_dict, load_checkpoint, state_dict_entries,
    strip_prefixes, training_only_keys, valid_size)
