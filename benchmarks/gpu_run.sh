#!/usr/bin/env bash
# One GPU-machine stage per call, from the repo root there (device `run`, carry [".whl"]; fetch the wheels here
# first with benchmarks/gpu_wheels.sh). Installs the carried wheels and this project into /tmp/site, runs the
# stage, and leaves in $OUT: <stage>.log, <stage>.tgz (every result file, to unpack into benchmarks/results/)
# and the stage's markdown summary. Stages:
#   head   bench_head.py, every GPU preset, providers hf / ours / liger(-gathered) / cce(-gathered)
#   e2e    bench_e2e.py bert-base + gpt2-small + bert-base-docs (padded vs packed vs unpadded): tokens/s, input wait share, 200-step loss curves, profiles
#   distill bench_distill.py: fused distillation (triton and torch backends) vs full logits + F.kl_div, bf16
#   tests  the gpu-marked tests, the kernel tests and the benchmark smoke tests on CUDA
# Usage: bash benchmarks/gpu_run.sh head|e2e|distill|tests [extra arguments for the script]
set -uo pipefail
stage=${1:?stage: head, e2e, distill or tests}; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; res=$(mktemp -d)
SITE=${SITE:-/tmp/site}
export PYTHONUNBUFFERED=1 PYTHONPATH=$SITE HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    && python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" . \
    || { echo "install failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/$stage.log"
date=$(date +%Y%m%d)
case $stage in
  head) python3 benchmarks/bench_head.py --preset bert-base modernbert bert-large causal-8k --reps 20 \
            --out "$res/head_cuda_$date" "$@" 2>&1 | tee -a "$OUT/$stage.log" ;;
  e2e) python3 benchmarks/bench_e2e.py --preset bert-base gpt2-small bert-base-docs --steps 30 --warmup 5 --workers 2 \
            --compare_loss 200 --profile --out "$res/e2e_cuda_$date" "$@" 2>&1 | tee -a "$OUT/$stage.log" ;;
  distill) for shape in "--tokens 16384" "--tokens 8192 --hidden 2048 4096 --vocab 128256 --labelled 1.0"; do
            python3 benchmarks/bench_distill.py --device cuda --dtype bf16 --reps 20 $shape \
              --out "$res/distill_cuda_${date}_${shape//[^0-9]/_}.md" "$@" 2>&1 | tee -a "$OUT/$stage.log"; done ;;
  tests) python3 -m pytest -q -p no:cacheprovider tests/kernels tests/test_bench_smoke.py tests/test_model.py \
            tests/test_patching.py "$@" 2>&1 | tee -a "$OUT/$stage.log" ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
rc=${PIPESTATUS[0]}
cp "$res"/*.md "$OUT"/ 2>/dev/null
tar czf "$OUT/$stage.tgz" -C "$res" . && echo "stage $stage rc=$rc; results: $(ls "$res" | tr '\n' ' ')"
exit "$rc"
