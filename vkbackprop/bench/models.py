"""The benchmarked training-step models, each in vkbackprop and as its PyTorch twin (same layers,
same shapes, PyTorch's default initialisation on both sides), and one PyTorch SGD step."""

from __future__ import annotations

RESNET_LAYERS = ("Conv2d", "BatchNorm2d", "AdaptiveAvgPool2d")   # what zoo.small_resnet needs


def vkbackprop_mlp(sizes):
    """Linear layers between consecutive sizes, ReLU between them (none after the last)."""
    import vkbackprop as vb
    layers = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [vb.Linear(fan_in, fan_out), vb.ReLU()]
    return vb.Sequential(*layers[:-1])


def torch_mlp(sizes):
    import torch
    layers = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def missing_resnet_layers() -> list:
    """The layers zoo.small_resnet needs that this build of vkbackprop lacks."""
    import vkbackprop as vb
    return [name for name in RESNET_LAYERS if not hasattr(vb, name)]


def vkbackprop_resnet(input_shape, classes, widths):
    from .. import zoo
    return zoo.small_resnet(input_shape, classes, widths)


def torch_resnet(input_shape, classes, widths):
    """The twin of zoo.small_resnet: a 3x3 stem, one residual block per width (stride 2 after the
    first), global average pooling, linear."""
    import torch
    nn = torch.nn

    class Block(nn.Module):   # zoo.residual_block
        def __init__(self, c_in, width, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(c_in, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
            self.skip = nn.Identity() if stride == 1 and c_in == width else nn.Sequential(
                nn.Conv2d(c_in, width, 1, stride, bias=False), nn.BatchNorm2d(width))

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    layers = [nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c = widths[0]
    for i, width in enumerate(widths):
        layers.append(Block(c, width, 1 if i == 0 else 2))
        c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


def torch_sgd_step(model, x, y, input_shape, lr: float, device: str = "cpu"):
    """A function running one SGD step of `model` (cross-entropy) on the batch (x flat, y labels);
    it returns the loss, read back, so a step has finished when it returns."""
    import torch
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    xt = torch.from_numpy(x).reshape(len(x), *input_shape).to(device)
    yt = torch.from_numpy(y).long().to(device)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    return step
