"""Write the test fixture of the ImageNet-weights tests with PyTorch itself (run once; the tests do not need
PyTorch): a ResNet-18-layout state dict (basic blocks 2-2-2-2, torchvision's keys) of small random tensors,
at 1/16 width (4-8-8-16 filters, a 10-class head), saved three ways:

    tests/fixtures/resnet18-<first 8 hex digits of its SHA-256>.pth   torch.save (zip format)
    tests/fixtures/resnet18-small-legacy.pth                          torch.save, the legacy format
    tests/fixtures/resnet18-small.safetensors                         the same tensors, safetensors

    python tools/write_weights_fixture.py      (needs torch, safetensors; removes the old fixture files)
"""

import glob
import hashlib
import os

import torch
from safetensors.torch import save_file

from kerasflow.backbones.resnet import ResNetBackbone
from kerasflow.backbones.resnet.resnet_converter import torch_layout, torch_shape

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")
CONFIG = {"stackwise_num_filters": (4, 8, 8, 16), "stackwise_num_blocks": (2, 2, 2, 2),
          "stackwise_num_strides": (1, 2, 2, 2), "block_type": "basic_block", "stem_filters": 4,
          "num_head_classes": 10}


def state_dict(seed=0):
    """torchvision's keys and shapes of ``CONFIG`` (read off kerasflow's own layout), random values; each
    batch norm also gets torchvision's int64 ``num_batches_tracked``."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, (variable, axes) in torch_layout(ResNetBackbone(**CONFIG)).items():
        state[key] = torch.randn(torch_shape(variable, axes), generator=generator)
        if key.endswith(".running_var"):
            state[key] = state[key].abs() + 0.5
            state[key.replace(".running_var", ".num_batches_tracked")] = torch.tensor(1000, dtype=torch.long)
    return state


def main():
    os.makedirs(FOLDER, exist_ok=True)
    for old in glob.glob(os.path.join(FOLDER, "resnet18-*")):
        os.remove(old)
    state = state_dict()
    zipped = os.path.join(FOLDER, "resnet18.pth")
    torch.save(state, zipped)
    with open(zipped, "rb") as file:
        prefix = hashlib.sha256(file.read()).hexdigest()[:8]
    os.replace(zipped, os.path.join(FOLDER, f"resnet18-{prefix}.pth"))
    torch.save(state, os.path.join(FOLDER, "resnet18-small-legacy.pth"), _use_new_zipfile_serialization=False)
    save_file(state, os.path.join(FOLDER, "resnet18-small.safetensors"))
    for name in sorted(os.listdir(FOLDER)):
        print(f"{name}: {os.path.getsize(os.path.join(FOLDER, name)):,} bytes")


if __name__ == "__main__":
    main()
