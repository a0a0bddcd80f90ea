"""Command line: `vkbackprop devices` (each Vulkan device with its limits), `vkbackprop demo`."""

from __future__ import annotations

import argparse
import os
import sys

from .device import choose_device_index, list_devices

_SHOWN = [("device_type", "type"), ("api_version", "Vulkan"), ("subgroup_size", "subgroup size"),
          ("max_shared_memory_size", "shared memory (bytes)"), ("max_work_group_invocations", "max invocations"),
          ("max_work_group_count", "max workgroups"), ("max_storage_buffer_range", "max buffer (bytes)"),
          ("timestamp_period", "timestamp period (ns)")]


def devices(_args) -> int:
    found = list_devices()
    chosen = choose_device_index(found, os.environ.get("VKBACKPROP_DEVICE"))
    for d in found:
        mark = "  <- default" if d["index"] == chosen else ""
        print(f"[{d['index']}] {d['device_name']}{mark}")
        for key, label in _SHOWN:
            value = d[key]
            if isinstance(value, tuple):
                value = ".".join(map(str, value)) if key == "api_version" else " x ".join(map(str, value))
            print(f"    {label:24s} {value}")
    return 0


def demo(_args) -> int:
    from .demo import main
    return main()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vkbackprop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="list Vulkan devices and their limits").set_defaults(run=devices)
    sub.add_parser("demo", help="train an MLP on the 8x8 digits").set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
