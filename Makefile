# Two commands on a fresh machine: `make demo` and `make test` (each creates .venv when missing).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/bbb_x2.mkv

.PHONY: demo test venv bench weights gpu-data clean

# A Python >= 3.12 (VapourSynth's wheel needs it): python3.13/python3.12 on PATH, else pyenv's 3.12.
PYTHON_BASE := $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.12.1/bin/python3.12 python3; do \
	  $$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { command -v $$p || echo $$p; } && break; done)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON_BASE)" || { echo "error: no Python >= 3.12 found (install python3.12, or pyenv install 3.12)"; exit 1; }
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,export]'
	@touch $(STAMP)

venv: $(STAMP)

# vspipe from the wheel needs `vapoursynth config` once, with the venv's python first on PATH.
vsconfig: $(STAMP)
	@PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/vapoursynth config >/dev/null 2>&1 || true

demo: $(STAMP)
	$(PY) examples/demo.py --output $(DEMO_OUT)

test: $(STAMP) vsconfig
	@command -v ffprobe >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null); } || echo "warning: ffprobe missing: tests that check outputs with it will skip"
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_models.py --vsmlrt

# Train every shipped model (resumable), then copy the best exports into weights/.
weights: $(STAMP)
	configs/train_all.sh $(VARIANTS)

# Training data for configs/train_gpu.sh on the device machine (carry [".gpu-data"]); Set5/Set14 only validate.
gpu-data:
	rm -rf .gpu-data && mkdir -p .gpu-data/train .gpu-data/benchmarks
	cp -r ../shared/data/train/T91 ../shared/data/train/BSD200 .gpu-data/train/
	cp -r ../shared/data/benchmarks/Set5 ../shared/data/benchmarks/Set14 .gpu-data/benchmarks/

clean:
	rm -rf $(VENV) out build dist *.egg-info
