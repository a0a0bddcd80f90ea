#!/usr/bin/env bash
# Build kp VERSION from its PyPI source distribution with kp-patches/*.patch applied, into OUT_DIR as a wheel.
# Uses the venv at $VENV (it must hold numpy, pybind11>=2.12,<3, setuptools and wheel): kp built against
# Debian's pybind11 2.10 silently reads numpy 2 arrays as zeros.
set -euo pipefail
version=$1; out_dir=$2
root=$(cd "$(dirname "$0")/.." && pwd)
py=${VENV:-$root/.venv}/bin/python

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$py" -m pip download -q --no-deps --no-binary :all: "kp==$version" -d "$work"
tar -xzf "$work/kp-$version.tar.gz" -C "$work"
src="$work/kp-$version"
for p in "$root"/kp-patches/*.patch; do
    patch -s -p1 -d "$src" < "$p"
done

# Offline build: system Vulkan headers, fmt and the venv's pybind11 instead of CMake downloads; logging off
# (the patched bindings release the GIL while waiting, so C++ must not call the Python logger).
# Debug layers off: otherwise every kp.Manager loads VK_LAYER_KHRONOS_validation whenever it is
# installed (setup.sh installs it for the tests) and sends its messages to the disabled logger, so
# every run, benchmarks included, ran under validation nobody read (on lavapipe its cost was within
# the noise: docs/benchmarks.md). vkbackprop.validation loads the layer itself (with sync validation
# and a log file) when VKBACKPROP_VALIDATE=1 asks for it.
export KOMPUTE_OPT_INSTALL=OFF KOMPUTE_OPT_USE_BUILT_IN_VULKAN_HEADER=OFF KOMPUTE_OPT_USE_BUILT_IN_FMT=OFF \
       KOMPUTE_OPT_USE_BUILT_IN_PYBIND11=OFF KOMPUTE_OPT_DISABLE_VULKAN_VERSION_CHECK=ON \
       KOMPUTE_OPT_LOG_LEVEL=Off KOMPUTE_OPT_DISABLE_VK_DEBUG_LAYERS=ON
export pybind11_DIR
pybind11_DIR=$("$py" -m pybind11 --cmakedir)
mkdir -p "$out_dir"
"$py" -m pip wheel -q --no-build-isolation --no-deps -w "$out_dir" "$src"
