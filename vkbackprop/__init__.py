"""vkbackprop: neural-network training on Vulkan compute shaders.

Each layer is a pair of GLSL compute shaders (forward, backward); a scheduler records a whole
training step into one Kompute sequence and the activations stay on the GPU.
"""

from .device import Device, list_devices
from .layers.activation import ReLU
from .layers.base import Module
from .layers.linear import Linear
from .losses import CrossEntropyLoss, MSELoss
from .model import Sequential
from .optim import SGD
from .random import manual_seed
from .shaders import ShaderError
from .train import Trainer

__all__ = ["Device", "list_devices", "Module", "Linear", "ReLU", "Sequential", "CrossEntropyLoss", "MSELoss",
           "SGD", "Trainer", "manual_seed", "ShaderError"]
__version__ = "0.1.0"
