#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: system packages, .venv, a patched kp wheel
# (rebuilt only when a patch changes) and the project itself (editable, with test extras).
# Every step checks first and does nothing when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PYTHON=${PYTHON:-python3}
VENV=${VENV:-$root/.venv}
KP_VERSION=0.9.0
DEBS=(mesa-vulkan-drivers libvulkan-dev glslang-tools vulkan-validationlayers vulkan-tools libfmt-dev cmake g++
      libopenmpi-dev openmpi-bin)

log() { printf '[setup] %s\n' "$*" >&2; }

# 1. Debian packages (lavapipe, Vulkan loader + headers, glslangValidator, validation layers, build tools,
#    Open MPI for data-parallel training).
missing=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. The virtual environment with the build requirements of kp.
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

# 3. kp built from its PyPI sdist with our patches, cached by the hash of version + patches + this script.
kp_key=$( { echo "$KP_VERSION"; cat kp-patches/*.patch scripts/build_kp.sh; } | sha256sum | cut -c1-16)
wheel_dir="$root/.cache/kp-wheel/$kp_key"
if ! ls "$wheel_dir"/kp-*.whl >/dev/null 2>&1; then
    pip install 'numpy>=2,<3' 'pybind11>=2.12,<3' setuptools wheel
    log "building patched kp $KP_VERSION (about a minute)"
    VENV="$VENV" bash scripts/build_kp.sh "$KP_VERSION" "$wheel_dir"
    # Wheels built from older patch sets are never used again.
    find "$root/.cache/kp-wheel" -mindepth 1 -maxdepth 1 ! -name "$kp_key" -exec rm -rf {} +
fi

# 4. The project and its dependencies; redone only when pyproject.toml or the kp wheel changed.
stamp="$VENV/.vkbackprop-setup"
want=$( { echo "$kp_key"; cat pyproject.toml; } | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing kp wheel and the project (editable, with test extras)"
    pip install --force-reinstall --no-deps "$wheel_dir"/kp-*.whl
    pip install -e ".[test]"
    echo "$want" > "$stamp"
fi
