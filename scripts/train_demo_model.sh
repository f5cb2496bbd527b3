#!/usr/bin/env bash
# Reproduce the bundled demo model (src/clipseek/models/clipseek-demo) from scratch, offline, on CPU.
# Usage: bash scripts/train_demo_model.sh [WORKDIR]   (default WORKDIR: build/demo-model)
# Measured (2026-11-27, 2 shared CPU cores): 24.8 min wall, 2,275 s CPU; test split: shape 49.3%,
# colour 95.3%, 48 classes 52.7%, held-out pairs 42.2%, text->image recall@5 0.915. Batch 32 (more
# optimizer steps than 128 at the same compute) and --group-by colour (one-colour batches force the
# model to tell shapes apart) were what moved shape accuracy off chance; it still rises at the last
# epoch, so more epochs (or a GPU) would help.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-build/demo-model}
EPOCHS=${EPOCHS:-25}
mkdir -p "$W"
.venv/bin/clipseek synth "$W/synth" --n 14400 --seed 0
rm -rf "$W/ckpt"
.venv/bin/clipseek train "$W/synth/manifest.jsonl" --split train --scratch small --out "$W/ckpt" \
    --epochs "$EPOCHS" --lr 1e-3 --batch-size 32 --warmup 300 --weight-decay 0.1 --seed 0 \
    --group-by colour --group-frac 0.5
.venv/bin/python benchmarks/demo_model_eval.py --model "$W/ckpt" --data "$W/synth" --split test
dest=src/clipseek/models/clipseek-demo
rm -rf "$dest" && mkdir -p "$dest"
cp "$W/ckpt"/{config.json,model.safetensors,processor_config.json,tokenizer.json,tokenizer_config.json,training_log.json} "$dest"/
echo "bundled model written to $dest"
