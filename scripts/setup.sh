#!/usr/bin/env bash
# Set up .venv with the pinned dependencies; as root with apt, also Debian's Fashion-MNIST.
#   bash scripts/setup.sh              # everything
#   bash scripts/setup.sh --no-system  # .venv only: no apt-get, whoever runs it
# Safe to run again: what is installed already is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

system=1
for arg in "$@"; do
  case "$arg" in
    --no-system) system=0 ;;
    *) echo "setup: unknown option $arg (known: --no-system)" >&2; exit 2 ;;
  esac
done

if [ "$system" = 1 ] && [ ! -d /usr/share/datasets/fashion-mnist ] \
  && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Debian's dataset-fashion-mnist (offline Fashion-MNIST for data=fashion_mnist); --no-system skips this"
  apt-get install -y -qq dataset-fashion-mnist >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "setup: dataset-fashion-mnist not installed; data=fashion_mnist will download instead" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# torch first, from the machine's local CUDA-build wheels (they run on CPU too)
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install -q -r requirements.txt
