"""Every layer: the table of `vkbackprop gradcheck` (discover, check_all, format_table)."""

from __future__ import annotations

from dataclasses import dataclass

from ..layers.base import Module
from ..losses import Loss
from . import registry          # registry.REGISTRY, looked up at call time (it may be swapped)
from .check import _describe, gradcheck
from .compare import GradcheckResult
from .registry import LayerSpec


def discover() -> list:
    """Layer and loss classes exported by vkbackprop (vkbackprop.__all__), in that order."""
    import vkbackprop
    found = []
    for name in vkbackprop.__all__:
        obj = getattr(vkbackprop, name, None)
        if isinstance(obj, type) and issubclass(obj, (Module, Loss)) and obj not in (Module, Loss):
            found.append(obj)
    return found


@dataclass
class Row:
    """One line of the table: a config's result, or why there is none."""
    cls: type
    label: str
    result: GradcheckResult | None = None
    status: str = "PASS"          # PASS, FAIL, not registered, ERROR: ...

    @property
    def failed(self) -> bool:
        return self.status == "FAIL" or self.status.startswith("ERROR")


def _make_seeded(make, seed):
    """make(), with parameter initialisation seeded (the table is reproducible) and the caller's
    generator left as it was."""
    from .. import random
    saved = random._rng
    random.manual_seed(seed)
    try:
        return make()
    finally:
        random._rng = saved


def check_all(names=None, *, batch: int = 4, seed: int = 0, device=None) -> list:
    """Rows for every exported layer/loss class (or those named): one per registered example, a
    'not registered' row for a class without a reference. Unknown names are a ValueError."""
    classes = discover()
    classes += [c for c in registry.REGISTRY if c not in classes]
    if names:
        by_name = {c.__name__.lower(): c for c in classes}
        unknown = [n for n in names if n.lower() not in by_name]
        if unknown:
            raise ValueError(f"unknown layer or loss {', '.join(unknown)}; known: "
                             f"{', '.join(c.__name__ for c in classes)}")
        wanted = {by_name[n.lower()] for n in names}
        classes = [c for c in classes if c in wanted]
    rows = []
    for cls in classes:
        spec = registry.REGISTRY.get(cls)
        if spec is None:
            rows.append(Row(cls, cls.__name__, status="not registered"))
            continue
        for example in spec.examples:
            label = cls.__name__
            try:
                obj = _make_seeded(example.make, seed)
                label = _describe(obj)
                widths = None
                if isinstance(spec, LayerSpec):
                    widths = tuple(example.widths or spec.widths(obj))
                    if len(widths) > 1:
                        label += f" on {len(widths)} inputs of width {'/'.join(map(str, widths))}"
                result = gradcheck(obj, widths=widths, batch=batch, seed=seed, device=device, raise_on_failure=False)
                rows.append(Row(cls, label, result, "PASS" if result.passed else "FAIL"))
            except Exception as e:   # a broken layer is one failing row, not a crashed table
                rows.append(Row(cls, label, status=f"ERROR: {type(e).__name__}: {e}"))
    return rows


def format_table(rows) -> str:
    """Plain-text table: layer, GPU-vs-reference max abs / max rel, reference-vs-FD max abs / max rel, result."""
    header = ("layer", "GPU-vs-ref max abs", "max rel", "ref-vs-FD max abs", "max rel", "result")
    lines = []
    for r in rows:
        if r.result is None:
            lines.append((r.label, "-", "-", "-", "-", r.status))
        else:
            res = r.result
            lines.append((r.label, f"{res.gpu_max_abs:.2e}", f"{res.gpu_max_rel:.2e}",
                          f"{res.fd_max_abs:.2e}", f"{res.fd_max_rel:.2e}", r.status))
    widths = [max(len(str(line[i])) for line in [header] + lines) for i in range(len(header))]
    def fmt(line):
        cells = [str(c).ljust(w) if i in (0, 5) else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()
    out = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(line) for line in lines]
    details = [r.result.message() for r in rows if r.result is not None and not r.result.passed]
    return "\n".join(out + ([""] + details if details else []))
