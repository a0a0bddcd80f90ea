#!/usr/bin/env bash
# The device check, run ON the NVIDIA machine from the project root, with .gl and .whl carried
# (scripts/gpu/prepare.sh made them). Results go to $OUT (or out/gpu): the test log, benchmark
# JSON and the tuned GEMM tile cache. Keep it inside the session's device budget: each part has its
# own timeout (about 585 s in all, with the set-up: `run` allows 600 a call).
# Usage: bash scripts/gpu/check.sh
set -uo pipefail
out=${OUT:-out/gpu}; mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD VKBACKPROP_CACHE_DIR=$out/cache
py=python3
$py -m vkbackprop devices | tee "$out/devices.txt"
# Correctness first: the layers, models, optimizers and the step structure (no validation layer there).
timeout 180 $py -m pytest -q -x -p no:cacheprovider tests/test_layers_gpu.py tests/test_conv.py tests/test_pool.py \
    tests/test_norm.py tests/test_recurrent.py tests/test_mlp_vs_torch.py tests/test_cnn.py tests/test_tuning.py \
    tests/test_gpu_plan.py tests/test_step_memory.py tests/test_schedule.py tests/test_softmax.py \
    tests/test_embedding.py tests/test_fusion.py -k "not cli" 2>&1 | tail -30 | tee "$out/tests.txt"
# The activations and Dropout on quads (storage reads on a GPU), on sizes around multiples of 4.
timeout 20 $py -m pytest -q -x -p no:cacheprovider tests/test_activations.py tests/test_dropout.py \
    -k "quads_and_tail or numpy_hash" 2>&1 | tail -5 | tee "$out/tests_elementwise.txt"
# The convolutions on the vec4 shuffle core (lavapipe's), whose subgroup shuffles and quad gathers a
# GPU runs with its own subgroup size and concurrency.
VKBACKPROP_GEMM_KERNEL=shuffle timeout 40 $py -m pytest -q -x -p no:cacheprovider tests/test_conv.py \
    -k "shuffle or phases or cifar" 2>&1 | tail -8 | tee "$out/tests_conv_shuffle.txt"
# Speed: every tile of the scalar GEMM core's family (the data for a GPU default tile), then GEMM
# (1024 and 4096) vs PyTorch CUDA, tuning the GEMM tiles as it plans.
timeout 60 $py bench/gemm_tiles.py --shape 4096,4096,4096 --shape 1024,1024,1024 --shape 128,784,256 \
    --json "$out/gemm_tiles.json" 2>&1 | tail -40 | tee "$out/gemm_tiles.txt"
VKBACKPROP_TUNE=1 timeout 130 $py -m vkbackprop bench --layer linear --shape 1024,1024,1024 --shape 4096,4096,4096 \
    --shape 128,784,256 --json "$out/gemm.json" --quiet 2>&1 | tail -12 | tee "$out/gemm.txt"
# The MLP-small step (its tiles tuned first), and where its GPU time goes, command by command (the
# <= 0.4 ms target's budget).
VKBACKPROP_TUNE=1 timeout 60 $py bench/mlp_step.py --steps 200 --profile --json "$out/mlp_step.json" 2>&1 | tail -45 \
    | tee "$out/mlp_step.txt"
# The same step on the vec4 subgroup-shuffle core (lavapipe's), to choose a GPU's default core.
VKBACKPROP_GEMM_KERNEL=shuffle VKBACKPROP_TUNE=1 timeout 45 $py bench/mlp_step.py --steps 200 \
    --json "$out/mlp_step_shuffle.json" 2>&1 | tail -14 | tee "$out/mlp_step_shuffle.txt"
# Last, as it may not finish: the training-step suite and sweeps vs PyTorch CUDA, tuning every shape
# class it plans (~75 classes of ~10 candidates: the driver compiles each candidate's pipeline).
VKBACKPROP_TUNE=1 timeout 40 $py -m vkbackprop bench --suite steps --max-seconds 25 --json "$out/steps.json" --quiet \
    2>&1 | tail -15 | tee "$out/steps.txt"
