"""Float64 NumPy reference implementations used as the test oracle for the Vulkan kernels."""

from .layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    linear_backward,
    linear_forward,
    mse_backward,
    mse_forward,
    numerical_gradient,
    relu_backward,
    relu_forward,
    sgd_update,
)

__all__ = [
    "cross_entropy_backward",
    "cross_entropy_forward",
    "linear_backward",
    "linear_forward",
    "mse_backward",
    "mse_forward",
    "numerical_gradient",
    "relu_backward",
    "relu_forward",
    "sgd_update",
]
