"""vkbackprop: neural-network training on Vulkan compute shaders.

Each layer is a pair of GLSL compute shaders (forward, backward); a scheduler records a whole
training step into one Kompute sequence and the activations stay on the GPU.
"""

from .device import Device, list_devices
from .layers.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .layers.base import Module
from .layers.linear import Linear
from .layers.conv import Conv2d
from .layers.structure import Add, Concat
from .layers.dropout import Dropout
from .layers.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .layers.view import Flatten, Identity, Reshape
from .layers.softmax import LogSoftmax, Softmax
from .layers.recurrent import GRU, LSTM, RNN, Narrow
from .layers.embedding import Embedding
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, MSELoss, NLLLoss
from .graph import Input
from .model import Model, Sequential
from .optim import (SGD, Adam, AdamW, ChainedScheduler, CosineAnnealingLR, ExponentialLR, LinearLR, LinearWarmup,
                    SequentialLR, StepLR)
from .random import manual_seed
from .shaders import ShaderError
from .train import Trainer
from .gradcheck import gradcheck   # shadows the submodule name: import helpers from vkbackprop.gradcheck

__all__ = ["Device", "list_devices", "Module", "Linear", "Conv2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU",
           "Softmax", "LogSoftmax", "RNN", "LSTM", "GRU", "Embedding", "Narrow",
           "Sequential", "Model", "Input", "Add", "Concat", "Dropout", "MaxPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "AvgPool2d", "AdaptiveAvgPool2d", "Identity", "Flatten", "Reshape", "CrossEntropyLoss", "MSELoss", "NLLLoss", "BCEWithLogitsLoss", "KLDivLoss",
           "SGD", "Adam", "AdamW", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "LinearWarmup",
           "SequentialLR", "ChainedScheduler", "Trainer", "manual_seed", "ShaderError", "gradcheck"]
__version__ = "0.1.0"
