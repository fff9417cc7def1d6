#!/usr/bin/env bash
# `make demo`: the RLHF loop that exists today, offline, on the bundled customer-support data and the default
# model (SmolLM2-135M-Instruct, an SFT model): check the data, split it by prompt, align with DPO (LoRA), and
# measure held-out preference accuracy before and after. (`rlhfkit demo` with the reward model, PPO and the
# HTML report is tracked in its own issue.)
set -euo pipefail
OUT="${1:-runs/demo}"
RLHFKIT="${RLHFKIT:-.venv/bin/rlhfkit}"
mkdir -p "$OUT"
start=$(date +%s)

echo "== 1/4  check the data"
"$RLHFKIT" data check bundled:support

echo "== 2/4  split by prompt into train and held-out parts"
"$RLHFKIT" data split bundled:support --test-fraction 0.15 --output-dir "$OUT/data"

echo "== 3/4  held-out preference accuracy of the starting model (its implicit reward is 0: accuracy is chance)"
echo "== 3/4  align with DPO (LoRA, one epoch)"
"$RLHFKIT" dpo --lora --data "$OUT/data/train.jsonl" --eval-data "$OUT/data/test.jsonl" --output "$OUT/dpo" \
  --num-epochs 1 --learning-rate 5e-5 --beta 0.1 --batch-size 8 --max-length 256 --max-prompt-length 128 \
  --warmup-ratio 0.1 --save-steps 20

echo "== 4/4  evaluate the aligned model against the starting model on the held-out pairs"
"$RLHFKIT" dpo --eval-only --model "$OUT/dpo/final" --eval-data "$OUT/data/test.jsonl" --max-length 256 \
  --max-prompt-length 128 --json | tee "$OUT/eval.json"
echo "demo finished in $(( $(date +%s) - start )) s; aligned model: $OUT/dpo/final"
