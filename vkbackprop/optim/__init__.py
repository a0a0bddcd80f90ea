from .adam import Adam, AdamW
from .base import Optimizer, copy, fill
from .lr_scheduler import (ChainedScheduler, CosineAnnealingLR, ExponentialLR, LinearLR, LinearWarmup, LRSchedule,
                           SequentialLR, StepLR)
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "copy", "fill", "LRSchedule", "StepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearLR", "LinearWarmup", "SequentialLR", "ChainedScheduler"]
