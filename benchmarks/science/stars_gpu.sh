#!/usr/bin/env bash
# S3 (python -m benchmarks.science.stars) on one GPU, its runs spread over parallel processes:
# CLIP pretraining, then both inits' learning-rate grids at 10% of the labels (one process per run), then each
# init's other fractions at its val-chosen rate and the modality comparison, then the figures are recorded.
# Usage: bash benchmarks/science/stars_gpu.sh [WORKDIR] [PRETRAIN_STEPS] [more stars.py options, e.g. --root R]
# (logs in WORKDIR/logs; the options given last win, e.g. --accelerator cpu for a dry run on a tiny universe)
set -euo pipefail
workdir=${1:-runs/science/s3-gpu}
pretrain_steps=${2:-2500}
extra=("${@:3}")
stars() { python -m benchmarks.science.stars --accelerator gpu --workdir "$workdir" --resume "$@" "${extra[@]}"; }
mkdir -p "$workdir/logs"
# a pattern that matches no run key ("none"): pretrain (or reuse the model) and record only
stars --pretrain-steps "$pretrain_steps" --pretrain-minutes 30 --threads 8 --only none >"$workdir/logs/pretrain.log" 2>&1
later=("lightcurve-clip-1-*" "lightcurve-clip-0.25-*,lightcurve-clip-0.01-*" "lightcurve-scratch-1-*"
       "lightcurve-scratch-0.25-*,lightcurve-scratch-0.01-*" "lightcurve+spectrum+tabular-*" "spectrum-*,tabular-*")
for phase in grid later; do
    if [ "$phase" = grid ]; then
        mapfile -t keys < <(python -c "from benchmarks.science.stars import LR_GRID, plan
print(*[run.key for run in plan({}, LR_GRID)], sep='\n')")
    else
        keys=("${later[@]}")
    fi
    for only in "${keys[@]}"; do
        stars --reuse --threads 2 --only "$only" >"$workdir/logs/${only//[*,+]/_}.log" 2>&1 &
    done
    wait
done
stars --reuse --only none 2>&1 | tee "$workdir/logs/record.log"
