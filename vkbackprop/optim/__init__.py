from .sgd import SGD, Optimizer

__all__ = ["SGD", "Optimizer"]
