#!/usr/bin/env bash
# The GPU check of the fused device plan (issue #17). NOT YET RUN ON A GPU: it was written and
# dry-run (--dry-run) on CPU-only machines. On a machine with an NVIDIA GPU and ONNX Runtime's
# CUDA provider installed (docs/gpu.md: ONNXRUNTIME_NODE_INSTALL=true npm install):
#
#   bash bench/gpu-check.sh [--device cuda:N] [--layers 4] [--overrides FILE | --model DIR] [--cache-dir DIR]
#
# 1. nvidia-smi; 2. the provider's libraries and what they link to (ldd); 3. the CUDA correctness
# tests (npm run test:cuda, with MOE_REQUIRE_CUDA=1: a missing provider fails, never skips);
# 4. the per-call overhead of a small graph on CUDA and on the CPU, and batch-1/8/32 decode of the
# fused plan on a DeepSeek-V2-Lite-shaped synthetic model at int4 (--layers of its 27; the shape
# is a parameter: --overrides takes config.json keys over the deepseek_v2 preset, --model a
# checkpoint), printed as tables and saved to bench/results/. All within 8 minutes: every step
# has its own time limit out of that budget. The synthetic checkpoint and the compiled graphs are
# cached (--cache-dir), so a second run skips writing and compiling them.
#
# --dry-run: the same steps on the CPU provider with a small shape, to check the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda:0
LAYERS=4
EXTRA=()
DRY_RUN=0
BUDGET_S=480
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --layers) LAYERS="$2"; shift 2 ;;
    --overrides|--model|--cache-dir) EXTRA+=("$1" "$2"); shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
START=$SECONDS
left() { echo $((BUDGET_S - (SECONDS - START))); }
section() { printf '\n== %s (%ss of the %ss budget left)\n' "$1" "$(left)" "$BUDGET_S"; }

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu
  echo "gpu-check: DRY RUN on the CPU provider (no GPU involved; the numbers say nothing about a GPU)"
fi
CUDA_ID=0
if [[ "$DEVICE" =~ ^cuda:([0-9]+)$ ]]; then CUDA_ID="${BASH_REMATCH[1]}"; elif [ "$DEVICE" = cuda ]; then DEVICE=cuda:0; fi

section "GPU"
if [ "$DRY_RUN" = 1 ]; then
  echo "(dry run: nvidia-smi skipped)"
else
  nvidia-smi
fi

section "ONNX Runtime CUDA provider"
ORT_DIR=$(node -e "const p=require('path');console.log(p.join(p.dirname(require.resolve('onnxruntime-node/package.json')),'bin','napi-v6',process.platform,process.arch))")
ls -l "$ORT_DIR"
if [ "$DRY_RUN" = 0 ]; then
  CUDA_LIB="$ORT_DIR/libonnxruntime_providers_cuda.so"
  if [ ! -f "$CUDA_LIB" ]; then
    echo "gpu-check: $CUDA_LIB is missing: install the provider (ONNXRUNTIME_NODE_INSTALL=true npm install; docs/gpu.md)" >&2
    exit 1
  fi
  ldd "$CUDA_LIB" | grep -E 'cuda|cublas|cudnn|curand|cufft|not found' || true
  if ldd "$CUDA_LIB" | grep -q 'not found'; then
    echo "gpu-check: the CUDA provider's libraries do not all resolve (above): CUDA 12 and cuDNN 9 must be on the loader path" >&2
    exit 1
  fi
fi

section "CUDA correctness tests (test/cuda)"
if [ "$DRY_RUN" = 1 ]; then
  timeout "$(left)" npx vitest run --config vitest.cuda.config.ts || true
else
  # About 2 minutes for the seven families; leave the rest for the measurements.
  MOE_REQUIRE_CUDA=1 MOE_CUDA_DEVICE="$CUDA_ID" timeout $(($(left) / 2)) npx vitest run --config vitest.cuda.config.ts
fi

section "measurements: per-call overhead, batch-1/8/32 decode"
mkdir -p bench/results
JSON="bench/results/gpu-check-$(date +%Y%m%d-%H%M%S).json"
if [ "$DRY_RUN" = 1 ]; then
  SMALL=$(mktemp)
  trap 'rm -f "$SMALL"' EXIT
  echo '{"hidden_size":256,"intermediate_size":512,"num_attention_heads":4,"num_key_value_heads":4,"kv_lora_rank":64,"qk_nope_head_dim":32,"qk_rope_head_dim":16,"v_head_dim":32,"n_routed_experts":16,"n_shared_experts":2,"num_experts_per_tok":4,"moe_intermediate_size":128,"topk_method":"greedy","n_group":1,"topk_group":1,"routed_scaling_factor":1,"max_position_embeddings":1024}' >"$SMALL"
  EXTRA=(--overrides "$SMALL" "${EXTRA[@]}")
fi
timeout "$(left)" node --import tsx bench/device-check.ts --device "$DEVICE" --layers "$LAYERS" --json "$JSON" "${EXTRA[@]}"
echo
echo "gpu-check: done in $((SECONDS - START)) s; results in $JSON"
