#!/usr/bin/env bash
# Installs cnnlab with everything it needs on a fresh machine (idempotent; offline data only).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install --disable-pip-version-check -q"
# torch first, pinned: this machine has these builds on disk; an unpinned torch would pull GBs of CUDA.
$PIP torch==2.14.1 torchvision==0.29.1
$PIP -e ".[torch,test,ray,pretrained]"
# Real offline data for the quickstart and the tests, where Debian's packages are reachable.
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null 2>&1; then
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1 \
    || echo "note: could not install Debian's dataset-fashion-mnist; the quickstart will use scikit-learn's digits"
fi
# Debian's chromium: the tests open the HTML report in it, headless.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "note: could not install Debian's chromium; the report rendering test will be skipped"
fi
