#!/usr/bin/env bash
# Measure scarbench on one CUDA GPU in a few minutes.
#
# Usage (from the repository root):
#   scripts/gpu_perf.sh [OUT_DIR]        # default OUT_DIR: $OUT, else perf-gpu
#
# Steps, each with its own time limit so that one slow step cannot use up the rest:
#   1. bench perf --device cuda on every backbone at the small and base presets:
#      engine vs bare loop (images/s, ratio, peak GPU memory), prediction, and
#      the estimated training time of `bench run --matrix full` on one GPU.
#   2. the same for unet-small with --compile (torch.compile in both loops).
#   3. one short training task with the `full` matrix's settings (base preset,
#      curriculum, seed 0, 6 epochs) through `bench run`. Its budget.json gives
#      images/s per curriculum stage, including the batch-4 stages.
#
# NOTE: step 2 timed out at 150 s in a CPU dry run (torch.compile on 1 thread);
# it has not yet run on a GPU.
#
# Writes OUT_DIR/gpu.txt, perf-cuda.{json,txt}, perf-cuda-compile.{json,txt},
# full-short/ (a run folder) and full-short-budget.json.
set -uo pipefail

out="${1:-${OUT:-perf-gpu}}"
mkdir -p "$out"
export SCARBENCH_CACHE="${SCARBENCH_CACHE:-$out/cache}"

if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    python=.venv/bin/python
else
    python=python3
fi
bench=("$python" -m bench)

# For a dry run of this script without a GPU: DEVICE=cpu PERF_ARGS=--quick FULL_EPOCHS=3.
device="${DEVICE:-cuda}"
read -r -a perf_args <<< "${PERF_ARGS:-}"
full_epochs="${FULL_EPOCHS:-6}"

status=0
step() {
    # step NAME SECONDS COMMAND...: run COMMAND under a time limit and record a failure.
    local name="$1" seconds="$2"
    shift 2
    echo "== $name (limit ${seconds} s)"
    local started=$SECONDS
    timeout "$seconds" "$@"
    local code=$?
    echo "== $name: exit $code after $((SECONDS - started)) s"
    if [[ $code -ne 0 ]]; then
        status=1
    fi
}

{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee "$out/gpu.txt"

step "perf, all backbones, small and base" 300 \
    "${bench[@]}" -v perf --device "$device" --backbones all --presets small,base \
    --repeats 3 --train-slices 192 --epochs 10 --prepare-repeats 1 \
    --parts preparation,training,prediction --out "$out/perf-cuda.json" "${perf_args[@]}" \
    > >(tee "$out/perf-cuda.txt") 2>&1

step "perf, unet-small with torch.compile" 150 \
    "${bench[@]}" -v perf --device "$device" --backbones unet --presets small --compile \
    --repeats 2 --train-slices 192 --epochs 10 --prepare-repeats 1 \
    --parts preparation,training --out "$out/perf-cuda-compile.json" "${perf_args[@]}" \
    > >(tee "$out/perf-cuda-compile.txt") 2>&1

step "one short full-preset task" 150 \
    "${bench[@]}" run --matrix full --backbone attention_unet --strategy curriculum --seeds 0 \
    --epochs "$full_epochs" --device "$device" --out "$out/full-short" --no-progress
for budget in "$out"/full-short/*/budget.json; do
    [[ -f "$budget" ]] && cp "$budget" "$out/full-short-budget.json" && cat "$budget"
done

nvidia-smi --query-gpu=memory.used,memory.total --format=csv | tee -a "$out/gpu.txt"
exit $status
