#!/usr/bin/env bash
# Prepare, on this (networked) machine, what a run on an NVIDIA device machine (x86-64, Python 3.12,
# numpy 2 and PyTorch CUDA, no network) needs, in two git-ignored folders that `run` can carry:
#   .gl/   the Vulkan loader, glvnd libraries, libfmt9 and glslangValidator as .deb files
#   .whl/  the patched kp built for cp312, and cp312 wheels of the other dependencies and test tools
# Then on the device: `bash scripts/gpu/check.sh` (see there). Idempotent: kept files are reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
for d in .gl .whl; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done

# 1. Debian packages (downloaded, not installed).
if ! ls .gl/*.deb >/dev/null 2>&1; then
    bash ../shared/gpu/fetch-debs.sh .gl
fi

# 2. kp for Python 3.12, built like scripts/setup.sh builds it for the local Python.
venv312=.cache/venv312
py312=${PY312:-python3.12}
"$py312" -V >/dev/null 2>&1 || py312=$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)
if [ ! -x "$venv312/bin/python" ]; then
    "$py312" -m venv "$venv312"
    "$venv312/bin/python" -m pip -q install 'numpy>=2,<3' 'pybind11>=2.12,<3' setuptools wheel
fi
if ! ls .whl/kp-*cp312*.whl >/dev/null 2>&1; then
    VENV="$venv312" bash scripts/build_kp.sh 0.9.0 .whl
fi

# 3. What the package and the device check's tests import, as cp312 wheels. numpy and torch are on
# the device already; scikit-learn (+ scipy, 45 MB) only loads the digits, which the check skips:
# `run` carries at most 64 MiB.
"$venv312/bin/python" -m pip -q download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .whl \
    tqdm matplotlib safetensors pytest hypothesis
rm -f .whl/numpy-*.whl
du -sh .gl .whl
