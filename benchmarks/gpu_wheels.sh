#!/usr/bin/env bash
# Fetch (here, with PyPI) the wheels the GPU machine lacks, into .whl/ (git-ignored), for `run(carry=[".whl"])`:
# the peers' kernels for the benchmarks and the transformers version this project is developed with
# (the GPU image has transformers 5.17). Python 3.12 wheels, x86-64. Usage: bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl liger-kernel==0.8.5 cut-cross-entropy==25.1.1 transformers==5.23.0
ls -la .whl
