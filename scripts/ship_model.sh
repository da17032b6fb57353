#!/usr/bin/env bash
# Turn a training run's best checkpoint into the shipped default model (weights/MODEL_CARD.md):
# fp16 safetensors, int8 ONNX with its self-check probe, densities calibrated on the training
# splits of every dataset, and the validation tables and figures of the model card.
#
#   bash scripts/ship_model.sh RUN/best.safetensors [OUT_DIR]
#
# Reads ../shared/data/{osie,mit1003,eyecrowd}; writes weights/msinet-v2*.{safetensors,onnx} and
# OUT_DIR/ (default ~/msinet-runs/ship): evaluate tables (JSON + text) and figures.
set -euo pipefail
cd "$(dirname "$0")/.."
best=${1:?usage: ship_model.sh RUN/best.safetensors [OUT_DIR]}
out=${2:-$HOME/msinet-runs/ship}
data=../shared/data
msinet=.venv/bin/msinet
mkdir -p "$out"

$msinet export --weights "$best" -o weights/msinet-v2.safetensors --version 2 \
  --description "MSI-Net trained by msinet on OSIE + MIT1003 + EyeCrowd (partial fine-tune)"
# int8 calibration images: OSIE 1001-1064, all training images
$msinet export --format onnx --int8 --weights weights/msinet-v2.safetensors \
  --calibration $data/osie/stimuli --calibration-count 64 -o weights/msinet-v2-int8.onnx
# one density calibration for all three datasets: the first 200 training images of each
$msinet calibrate --data osie:$data/osie --data mit1003:$data/mit1003 \
  --data eyecrowd:$data/eyecrowd --limit 200 --weights weights/msinet-v2.safetensors \
  --write weights/msinet-v2.safetensors --write weights/msinet-v2-int8.onnx \
  --json "$out/calibration.json" | tee "$out/calibration.txt"
sha256sum weights/msinet-v2.safetensors weights/msinet-v2-int8.onnx | tee "$out/sha256.txt"
