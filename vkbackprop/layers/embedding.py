"""Embedding: a lookup table of vectors indexed by integer tokens (torch.nn.Embedding's names,
initialisation N(0, 1) and padding_idx).

Model inputs are float arrays, so tokens arrive as float values holding integers (exact up to
2**24). A Trainer refuses tokens that are not integers in [0, num_embeddings) with a ValueError
before any GPU work (check_input_values); on the GPU such a token gives a NaN output row, so even
data that bypasses the check (an intermediate value) makes the step raise, never train on garbage. The weight gradient is gathered, not scattered: the invocation owning (token v,
feature d) sums dy over the positions holding v in position order, so it is deterministic and
needs no float atomics. By rows (embedding/backward.comp), every row's invocations read every
token once per 16 features: vocabulary x positions x features / 16 token reads. By chains, where
that costs more than positions^2, each position is first linked to the next one holding its token
(backward_links.comp) and the invocation owning a token's first position walks that chain
(backward_chains.comp), adding the same terms in the same order: the same bits (16x32 tokens,
vocabulary 1000, dim 64 on lavapipe: 10.5 -> 1.2 ms)."""

from __future__ import annotations

import numpy as np

from .. import random
from ..optim.base import fill
from .activation import elementwise
from .arguments import is_int
from .base import LayerIO, Module


# Features one invocation of embedding/backward.comp gathers (its -DG).
BACKWARD_FEATURES = 16


class Embedding(Module):
    backward_reads = ("x",)     # the tokens

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 name: str | None = None):
        for what, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not is_int(value) or value < 1:
                raise ValueError(f"Embedding: {what} must be a positive int, got {value!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not is_int(padding_idx) or not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be an int in [-{self.num_embeddings}, "
                                 f"{self.num_embeddings}), got {padding_idx!r}")
            padding_idx = int(padding_idx) % self.num_embeddings     # torch also counts from the end
        self.padding_idx = padding_idx
        self.name = name
        weight = random.generator().standard_normal((self.num_embeddings, self.embedding_dim)).astype(np.float32)
        if padding_idx is not None:
            weight[padding_idx] = 0.0
        self._weight = weight

    def __repr__(self) -> str:
        extra = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{extra})"

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self._weight.copy()}

    def check_input_values(self, index: int, values: np.ndarray, in_shapes: list) -> None:
        from ..checks import integers_in
        integers_in(values, 0, self.num_embeddings - 1, repr(self), "tokens")

    def output_shape(self, *shapes: tuple) -> tuple:
        """Tokens of any per-sample shape S -> S + (embedding_dim,)."""
        if len(shapes) != 1:
            raise ValueError(f"{self!r} takes one input (the tokens), got {len(shapes)}")
        return tuple(shapes[0]) + (self.embedding_dim,)

    def forward(self, io: LayerIO) -> list:
        return [elementwise(io.device, "embedding/forward.comp",
                            {"tokens": io.x, "weight": io.params["weight"], "y": io.y}, io.y.size,
                            {"DIM": self.embedding_dim, "NUM_EMBEDDINGS": self.num_embeddings})]

    def backward(self, io: LayerIO) -> list:
        positions = io.x.size
        io.device.check_loop(positions + 1, f"embedding/backward.comp ({positions} positions)")
        padding = -1 if self.padding_idx is None else self.padding_idx
        groups = -(-self.embedding_dim // BACKWARD_FEATURES)
        constants = {"POSITIONS": positions, "DIM": self.embedding_dim, "NUM_EMBEDDINGS": self.num_embeddings,
                     "PADDING_IDX": padding, "GROUPS": groups}
        buffers = {"tokens": io.x, "dy": io.dy, "dweight": io.grads["weight"]}
        work = self._by_chains(io, buffers, constants) if self._chains_cost_less(positions, groups) else \
            self._by_rows(io, buffers, constants)
        if io.dx is not None:    # tokens are indices: no gradient flows into them
            work.append(fill(io.device, io.dx, 0.0))
        return work

    def _chains_cost_less(self, positions: int, groups: int) -> bool:
        """Whether linking the positions (positions^2 token reads) costs less than every row
        scanning every position (vocabulary x feature groups x positions)."""
        return positions <= self.num_embeddings * groups

    def _by_rows(self, io: LayerIO, buffers: dict, constants: dict) -> list:
        """embedding/backward.comp: the invocation owning (token, feature group) gathers over all
        positions."""
        program = io.device.program("embedding/backward.comp", {"G": BACKWARD_FEATURES})
        rows = self.num_embeddings * constants["GROUPS"]
        return [io.device.dispatch(program, buffers, io.device.grid_1d(rows, program.local_size[0]), constants)]

    def _by_chains(self, io: LayerIO, buffers: dict, constants: dict) -> list:
        """Each position linked to the next holding its token (embedding/backward_links.comp), then
        the owner of a token's first position and a feature group walks that chain
        (backward_chains.comp) into a zero-filled gradient: the same sums in the same order."""
        device, positions = io.device, constants["POSITIONS"]
        links = {"next": device.buffer(f"{io.grads['weight'].name}.next", (positions,), np.uint32),
                 "heads": device.buffer(f"{io.grads['weight'].name}.heads", (positions,), np.uint32)}
        link = device.program("embedding/backward_links.comp")
        walk = device.program("embedding/backward_chains.comp", {"G": BACKWARD_FEATURES})
        return [device.dispatch(link, {"tokens": io.x, **links}, device.grid_1d(positions, link.local_size[0]),
                                {"POSITIONS": positions, "NUM_EMBEDDINGS": self.num_embeddings}),
                fill(device, io.grads["weight"], 0.0),
                device.dispatch(walk, {**buffers, **links},
                                device.grid_1d(positions * constants["GROUPS"], walk.local_size[0]), constants)]
