from .adam import Adam, AdamW
from .base import Optimizer, fill
from .lr_scheduler import (ChainedScheduler, CosineAnnealingLR, ExponentialLR, LinearLR, LinearWarmup, LRSchedule,
                           SequentialLR, StepLR)
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "fill", "LRSchedule", "StepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearLR", "LinearWarmup", "SequentialLR", "ChainedScheduler"]
