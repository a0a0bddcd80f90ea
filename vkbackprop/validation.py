"""Khronos validation with synchronization validation, switched on by VKBACKPROP_VALIDATE=1.

The layer reads its settings from a vk_layer_settings.txt found through VK_LAYER_SETTINGS_PATH and is
loaded through VK_INSTANCE_LAYERS; both must be set before the first Vulkan instance is created, so
`Device()` calls `enable_if_requested()` first. The layer writes to a log file of ours, which
`new_messages()` reads: the test suite fails any test after which a validation error appeared.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

LAYER = "VK_LAYER_KHRONOS_validation"
_log_path: Path | None = None
_read_upto = 0


def requested() -> bool:
    return os.environ.get("VKBACKPROP_VALIDATE", "") not in ("", "0")


def enable(log_dir: str | None = None) -> Path:
    """Point the loader at the validation layer with sync validation; return the log file path."""
    global _log_path
    if _log_path is not None:
        return _log_path
    folder = Path(log_dir or tempfile.mkdtemp(prefix="vkbackprop-validation-"))
    log = folder / "validation.log"
    log.touch()
    (folder / "vk_layer_settings.txt").write_text(
        "khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG\n"
        "khronos_validation.report_flags = error,warn\n"
        f"khronos_validation.log_filename = {log}\n"
        "khronos_validation.enables = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT\n")
    layers = [x for x in os.environ.get("VK_INSTANCE_LAYERS", "").split(":") if x]
    if LAYER not in layers:
        layers.append(LAYER)
    os.environ["VK_INSTANCE_LAYERS"] = ":".join(layers)
    os.environ["VK_LAYER_SETTINGS_PATH"] = str(folder)
    _log_path = log
    return log


def enable_if_requested() -> None:
    if requested():
        enable()


def is_enabled() -> bool:
    return _log_path is not None


def new_messages() -> list[str]:
    """Validation errors logged since the last call (warnings are not errors and are left out)."""
    global _read_upto
    if _log_path is None:
        return []
    with open(_log_path, "r", errors="replace") as f:
        f.seek(_read_upto)
        text = f.read()
        _read_upto = f.tell()
    return [m.strip() for m in text.split("Validation ") if m.startswith("Error")]
