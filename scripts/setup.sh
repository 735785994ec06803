#!/usr/bin/env bash
# Set up .venv with the pinned dependencies; install Debian's Fashion-MNIST when apt is usable.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq dataset-fashion-mnist >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "setup: dataset-fashion-mnist not installed; data=fashion_mnist will download instead" >&2
fi

python3 -m venv .venv
# torch first, from the machine's local CUDA-build wheels (they run on CPU too)
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install -q -r requirements.txt
