#!/usr/bin/env bash
# Reproduce the bundled demo model (src/clipseek/models/clipseek-demo) from scratch, offline, on CPU.
# Usage: bash scripts/train_demo_model.sh [WORKDIR]   (default WORKDIR: build/demo-model)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-build/demo-model}
EPOCHS=${EPOCHS:-10}
mkdir -p "$W"
.venv/bin/clipseek synth "$W/synth" --n 14400 --seed 0
rm -rf "$W/ckpt"
.venv/bin/clipseek train "$W/synth/manifest.jsonl" --split train --scratch small --out "$W/ckpt" \
    --epochs "$EPOCHS" --lr 1.5e-3 --batch-size 128 --warmup 100 --weight-decay 0.1 --seed 0
.venv/bin/python benchmarks/demo_model_eval.py --model "$W/ckpt" --data "$W/synth" --split test
dest=src/clipseek/models/clipseek-demo
rm -rf "$dest" && mkdir -p "$dest"
cp "$W/ckpt"/{config.json,model.safetensors,processor_config.json,tokenizer.json,tokenizer_config.json,training_log.json} "$dest"/
echo "bundled model written to $dest"
