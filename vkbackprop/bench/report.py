"""The results as a terminal table, JSON and PNG plots.

JSON (`--json PATH`), schema 1; times in milliseconds, each timing {min_ms, median_ms, max_ms, repeats}:
  device: {name, type, timestamp_period_ns, subgroup_size}
  host: {torch_device, torch_version, torch_threads, numpy_version}
  settings: {repeats, warmup, max_seconds}
  peak: {gflops, gbps, fma: {workgroups, flops_per_run, timing}, copy: {buffer_bytes, bytes_per_run, timing}}
  ops: [{op, shape, pass, flops (null: no weight GEMM), bytes (a lower bound: each buffer read or
         written once), vkbackprop (GPU timestamps), dispatches {shader: timing}, numpy, torch,
         gflops, gbps, pct_peak_flops, pct_peak_bandwidth (from the medians; null where flops is),
         ratio_vs_numpy, ratio_vs_torch (vkbackprop / other, medians), max_rel_error, ok}]
  gemm_rate_gflops: the Linear rate that step-time estimates use (null without steps)
  steps: [{name, batch, status ("ok" | "skipped" | "not available"), reason, flops, estimated_s,
           vkbackprop, torch (wall time of one step), ratio (vkbackprop / torch)}]
  sweeps: {batch: [step entries with "batch"], hidden_layers: [step entries with "hidden_layers"]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .layer_bench import MISMATCH, OpResult
from .peak import Peak
from .steps import StepResult

SCHEMA = 1


@dataclass
class Report:
    device: dict
    host: dict
    settings: dict
    peak: Peak | None = None
    ops: list = field(default_factory=list)        # OpResult
    gemm_rate: float | None = None                 # FLOP/s
    steps: list = field(default_factory=list)      # StepResult
    sweeps: dict = field(default_factory=dict)     # axis -> [StepResult]


# --- derived numbers ----------------------------------------------------------------------------
def _rates(r: OpResult, peak: Peak | None) -> dict:
    seconds = r.gpu.median
    gflops = r.flops / seconds / 1e9 if r.flops else None
    gbps = r.bytes / seconds / 1e9
    return {"gflops": gflops, "gbps": gbps,
            "pct_peak_flops": 100 * gflops * 1e9 / peak.flops_per_s if gflops and peak else None,
            "pct_peak_bandwidth": 100 * gbps * 1e9 / peak.bytes_per_s if peak else None,
            "ratio_vs_numpy": seconds / r.numpy.median, "ratio_vs_torch": seconds / r.torch.median}


# --- JSON ---------------------------------------------------------------------------------------
def _op_json(r: OpResult, peak) -> dict:
    return {"op": r.op, "shape": list(r.shape), "pass": r.pass_, "flops": r.flops, "bytes": r.bytes,
            "vkbackprop": r.gpu.to_json(), "dispatches": {k: t.to_json() for k, t in r.dispatches.items()},
            "numpy": r.numpy.to_json(), "torch": r.torch.to_json(), **_rates(r, peak),
            "max_rel_error": r.max_rel_error, "ok": r.max_rel_error <= MISMATCH}


def _step_json(r: StepResult) -> dict:
    return {"name": r.name, "batch": r.batch, **r.extra, "status": r.status, "reason": r.reason, "flops": r.flops,
            "estimated_s": r.estimated_s, "vkbackprop": r.vkbackprop and r.vkbackprop.to_json(),
            "torch": r.torch and r.torch.to_json(), "ratio": r.ratio}


def to_json(report: Report) -> dict:
    peak = report.peak
    return {"schema": SCHEMA, "device": report.device, "host": report.host, "settings": report.settings,
            "peak": peak and {"gflops": peak.flops_per_s / 1e9, "gbps": peak.bytes_per_s / 1e9,
                              "fma": {**peak.fma, "timing": peak.fma["timing"].to_json()},
                              "copy": {**peak.copy, "timing": peak.copy["timing"].to_json()}},
            "ops": [_op_json(r, peak) for r in report.ops],
            "gemm_rate_gflops": report.gemm_rate and report.gemm_rate / 1e9,
            "steps": [_step_json(r) for r in report.steps],
            "sweeps": {axis: [_step_json(r) for r in rs] for axis, rs in report.sweeps.items()}}


def write_json(report: Report, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(to_json(report), indent=2))


# --- terminal -----------------------------------------------------------------------------------
def _num(value, fmt="{:.2f}", none="-") -> str:
    return none if value is None else fmt.format(value)


def _table(header: list, rows: list) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _timing_ms(t) -> str:
    return f"{t.min * 1e3:.3g} / {t.median * 1e3:.3g} / {t.max * 1e3:.3g}"


def format_report(report: Report) -> str:
    d, h = report.device, report.host
    torch_label = f"torch {h['torch_device']}"
    parts = [f"device  {d['name']} ({d['type']}, timestamp period {d['timestamp_period_ns']:g} ns); "
             f"NumPy {h['numpy_version']}, PyTorch {h['torch_version']} on {h['torch_device']} "
             f"({h['torch_threads']} threads)"]
    if report.peak:
        p = report.peak
        parts.append(f"peak    {p.flops_per_s / 1e9:.1f} GFLOP/s (FMA chains), {p.bytes_per_s / 1e9:.1f} GB/s (copy), "
                     "fastest runs, measured now: the 100% of the %peak columns")
    if report.ops:
        rows = []
        for r in report.ops:
            x = _rates(r, report.peak)
            rows.append([r.op, "x".join(map(str, r.shape)), r.pass_, _timing_ms(r.gpu),
                         _num(x["gflops"], "{:.3g}"), _num(x["pct_peak_flops"], "{:.2g}%"),
                         _num(x["gbps"], "{:.3g}"), _num(x["pct_peak_bandwidth"], "{:.2g}%"),
                         f"{r.numpy.median * 1e3:.3g}", f"{r.torch.median * 1e3:.3g}",
                         f"{x['ratio_vs_numpy']:.2f}x", f"{x['ratio_vs_torch']:.2f}x",
                         "ok" if r.max_rel_error <= MISMATCH else f"WRONG ({r.max_rel_error:.1e})"])
        parts.append("ops: shaders alone (GPU timestamps, ms min / median / max); GFLOP/s counts weight GEMMs only; "
                     "GB/s counts each buffer once (a lower bound); ratios are vkbackprop time / other time\n"
                     + _table(["op", "shape", "pass", "vkbackprop ms", "GFLOP/s", "%FMA", "GB/s", "%copy",
                               "NumPy ms", f"{torch_label} ms", "vs NumPy", "vs torch", "result"], rows))
    if report.steps:
        parts.append("training steps: wall time of Trainer.step (median), SGD + cross-entropy\n"
                     + _steps_table(report.steps, torch_label))
    for axis, results in report.sweeps.items():
        fixed = "" if axis == "batch" else f", batch {results[0].batch}"
        parts.append(f"sweep over {axis.replace('_', ' ')}: MLP steps{fixed}\n" + _steps_table(results, torch_label, axis))
    if report.gemm_rate:
        parts.append(f"(estimates use the Linear shaders' measured rate, {report.gemm_rate / 1e9:.1f} GFLOP/s)")
    return "\n\n".join(parts)


def _steps_table(results: list, torch_label: str, axis: str = "batch") -> str:
    """One row per step result; `axis` first (a sweep's variable; batch by default)."""
    rows = [[str(r.extra.get(axis, r.batch)), r.name, _num(r.flops and r.flops / 1e9, "{:.3g}"),
             _num(r.vkbackprop and r.vkbackprop.median * 1e3, "{:.3g}"),
             _num(r.torch and r.torch.median * 1e3, "{:.3g}"), _num(r.ratio, "{:.2f}x"), r.reason]
            for r in results]
    return _table([axis.replace("_", " "), "model", "GFLOP", "vkbackprop ms", f"{torch_label} ms", "ratio", "note"],
                  rows)


# --- plots --------------------------------------------------------------------------------------
def write_plots(report: Report, folder) -> list:
    """PNGs of what this run measured: GFLOP/s of the GEMM-shaped ops vs their size, and step time
    vs batch size and vs depth. Returns the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(folder / name, format="png", dpi=100)
        plt.close(fig)
        written.append(folder / name)

    gemms = [r for r in report.ops if r.flops]
    if gemms:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for pass_, marker in (("forward", "o"), ("backward", "s")):
            rs = sorted((r for r in gemms if r.pass_ == pass_), key=lambda r: r.flops)
            for who, seconds, style in (("vkbackprop", lambda r: r.gpu.median, "-"),
                                        ("NumPy", lambda r: r.numpy.median, ":"),
                                        (f"PyTorch {report.host['torch_device']}", lambda r: r.torch.median, "--")):
                ax.plot([r.flops for r in rs], [r.flops / seconds(r) / 1e9 for r in rs], style, marker=marker,
                        label=f"{who} {pass_}")
        if report.peak:
            ax.axhline(report.peak.flops_per_s / 1e9, color="gray", lw=1, label="measured FMA peak")
        ax.set(xscale="log", yscale="log", xlabel="FLOPs per pass", ylabel="GFLOP/s",
               title=f"GEMM-shaped ops on {report.device['name']}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        save(fig, "gemm_gflops.png")
    for axis, results in report.sweeps.items():
        done = [r for r in results if r.status == "ok"]
        if not done:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r.extra[axis] for r in done]
        ax.plot(xs, [r.vkbackprop.median * 1e3 for r in done], "-o", label="vkbackprop")
        ax.plot(xs, [r.torch.median * 1e3 for r in done], "--s", label=f"PyTorch {report.host['torch_device']}")
        # Cost in proportion to work, through the largest vkbackprop point: where the measured
        # line lies above it at small sizes, fixed costs dominate.
        scale = done[-1].vkbackprop.median * 1e3 / done[-1].flops
        ax.plot(xs, [r.flops * scale for r in done], ":", color="gray", label="proportional to FLOPs")
        ax.set(xscale="log" if axis == "batch" else "linear", yscale="log", xlabel=axis.replace("_", " "),
               ylabel="step time (ms)", title=f"MLP training step vs {axis.replace('_', ' ')}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        save(fig, f"step_vs_{axis}.png")
    return written


def step_summary(trainer, model: str, vkbackprop_ms: float, torch_ms: float, torch_device: str) -> dict:
    """The bench/ scripts' record of one training step vs PyTorch (on `torch_device`)."""
    import torch
    log = trainer.plan.train.log
    return {"device": trainer.device.name, "model": model, "vkbackprop_ms": vkbackprop_ms, "torch_ms": torch_ms,
            "torch_device": torch_device, "torch_threads": torch.get_num_threads(),
            "dispatches_per_step": sum(k == "dispatch" for k, _ in log),
            "barriers_per_step": sum(k == "barrier" for k, _ in log), "ratio_vs_torch": vkbackprop_ms / torch_ms}


def print_step_comparison(results: dict, steps: int, json_path=None, decimals: int = 2) -> None:
    """The bench/ scripts' summary of one training step vs PyTorch (a step_summary, optionally with
    fixed_submit_us and its _p10/_p90, low_latency_mode, and low_latency: the timings again in
    low-latency mode, None where unavailable), and the same as JSON at json_path."""
    print(f"device              {results['device']}")
    print(f"model               {results['model']}")
    if "low_latency_mode" in results:
        print("CPU idle policy     " + ("low-latency mode (VKBACKPROP_LOW_LATENCY=1)" if results["low_latency_mode"]
                                      else "as configured"))
    print(f"vkbackprop step     {results['vkbackprop_ms']:.{decimals}f} ms (median of {steps}; "
          f"{results['dispatches_per_step']} dispatches, {results['barriers_per_step']} barriers)")
    torch_name = "PyTorch " + ("CPU" if results["torch_device"] == "cpu" else results["torch_device"].upper())
    _print_timings(results, decimals, torch_name, torch_threads=results["torch_threads"])
    if "low_latency" in results:
        low = results["low_latency"]
        if low is None:
            print("low-latency mode    unavailable (needs write access to /dev/cpu_dma_latency)")
        else:
            print("low-latency mode    (a PM QoS request of 0 us: idle CPUs poll; VKBACKPROP_LOW_LATENCY=1)")
            print(f"vkbackprop step     {low['vkbackprop_ms']:.{decimals}f} ms")
            _print_timings(low, decimals, torch_name)
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))


def _print_timings(results: dict, decimals: int, torch_name: str, torch_threads=None) -> None:
    threads = f" ({torch_threads} threads)" if torch_threads and torch_name.endswith("CPU") else ""
    print(f"{torch_name + ' step':20s}{results['torch_ms']:.{decimals}f} ms{threads}")
    print(f"ratio               {results['ratio_vs_torch']:.2f}x {torch_name}")
    if "fixed_submit_us" in results:
        spread = (f" (p10 {results['fixed_submit_us_p10']:.0f}, p90 {results['fixed_submit_us_p90']:.0f})"
                  if "fixed_submit_us_p10" in results else "")
        print(f"fixed submit cost   {results['fixed_submit_us']:.0f} us median per eval of a recorded sequence{spread}")
