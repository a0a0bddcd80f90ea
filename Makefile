# Two commands on a fresh Debian 12 machine: `make demo` and `make test`.
# Both first run the idempotent set-up (system packages, .venv, patched kp wheel, the project).
PY := .venv/bin/python

.PHONY: setup demo test bench devices gradcheck clean
setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m vkbackprop.demo

# The suite runs under the Khronos validation layer with synchronization validation:
# any validation error fails the test during which it was logged.
test: setup
	VKBACKPROP_VALIDATE=1 $(PY) -m pytest -q

bench: setup
	$(PY) bench/mlp_step.py
	$(PY) bench/cnn_step.py
	$(PY) bench/lstm_step.py
	$(PY) bench/distributed_step.py
	$(PY) bench/gemm_tiles.py

devices: setup
	$(PY) -m vkbackprop devices

clean:
	rm -rf .venv .cache build dist *.egg-info
