#!/usr/bin/env bash
# Builds the separate virtual env that benchmarks/keras_bench.py runs in.
#
#     bash benchmarks/setup_keras_env.sh [VENV_DIR]      # default /tmp/venv-tf
#
# TensorFlow lives in its own env so it never shares a process, a NumPy pin or a thread
# pool with torch/cnnlab: each side of the comparison gets what a fresh user install gives.
# The plain `tensorflow` wheel runs on the CPU: the CUDA libraries only come with the
# `tensorflow[and-cuda]` extra, which a CPU benchmark does not want.
set -euo pipefail

VENV_DIR="${1:-/tmp/venv-tf}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$VENV_DIR"
"$VENV_DIR/bin/python" -m pip install --quiet --upgrade pip
# TF pinned to a minor series so a rerun months later measures the same oneDNN kernels; Keras
# comes as TF's dependency (Keras 3.15.1 with TF 2.21.0 when this was written) and is reported in the JSON.
"$VENV_DIR/bin/python" -m pip install --quiet "tensorflow==2.21.*"
# stderr dropped: TF logs its CUDA probing there even on a CPU-only machine.
"$VENV_DIR/bin/python" -c "import tensorflow as tf, keras; print('tensorflow', tf.__version__, 'keras', keras.__version__)" \
    2>/dev/null
