#!/usr/bin/env bash
# GPU benchmark, one prepared script (H100/H200-class machine, a Python with torch+CUDA).
#
#   bash benchmarks/gpu.sh            # GPT-2-small shape, bf16-mixed, eager then --compile (< 6 min)
#   bash benchmarks/gpu.sh --smoke    # tiny shapes on whatever device there is (checks the script on CPU)
#
# Dependencies: if lightning/tokenizers/... do not import, wheels in .whl/ are installed with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
# (omegaconf is optional: the benchmark path does not need it; an sdist .tar.gz there is tried too).
# Results (JSON + logs) go to $OUT (default ./gpu-out).
# Environment: PYTHON (default python3), OUT, WHEELS (default .whl), SITE (default /tmp/site), STEPS,
# ROUNDS override the defaults below.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/site}
ORIG_PYTHONPATH=${PYTHONPATH:-}
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
T_START=$(date +%s)
say() { echo "[gpu.sh $(( $(date +%s) - T_START ))s] $*"; }

# ---------------------------------------------------------------------------------- environment
{
  say "host $(hostname), $(nproc) CPUs"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  $PY -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda, "| available", torch.cuda.is_available())'
} 2>&1 | tee "$OUT/env.txt"

MODS="torch numpy yaml tqdm tokenizers lightning_utilities torchmetrics lightning omegaconf"
check_imports() {
  $PY - "$@" <<'EOF'
import importlib, sys
missing = []
for m in sys.argv[1:]:
    try:
        mod = importlib.import_module(m)
        print(f"  ok       {m} {getattr(mod, '__version__', '')}")
    except Exception as e:
        print(f"  MISSING  {m}: {type(e).__name__}: {e}")
        missing.append(m)
open("/tmp/gpu_sh_missing", "w").write(" ".join(missing))
EOF
}
say "imports:" | tee -a "$OUT/env.txt"
check_imports $MODS 2>&1 | tee -a "$OUT/env.txt"
MISSING=$(cat /tmp/gpu_sh_missing 2>/dev/null)
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "$MISSING" ]]; then
  if compgen -G "$WHEELS/*.whl" >/dev/null; then
    say "installing $WHEELS/*.whl into $SITE (missing: $MISSING)" | tee -a "$OUT/env.txt"
    $PY -m pip install -q --upgrade --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl 2>&1 | tail -5 | tee -a "$OUT/env.txt"
    if compgen -G "$WHEELS/*.tar.gz" >/dev/null; then  # e.g. antlr4-python3-runtime 4.9.3 (no wheel on PyPI)
      $PY -m pip install -q --upgrade --no-index --no-deps --no-build-isolation --target "$SITE" "$WHEELS"/*.tar.gz 2>&1 | tail -3 | tee -a "$OUT/env.txt"
    fi
    export PYTHONPATH="$SITE:$ROOT/src${ORIG_PYTHONPATH:+:$ORIG_PYTHONPATH}"
    check_imports $MODS 2>&1 | tee -a "$OUT/env.txt"
  else
    say "no $WHEELS/ folder: cannot install $MISSING" | tee -a "$OUT/env.txt"
  fi
fi
# omegaconf is optional; the rest is not
for m in torch numpy yaml tqdm tokenizers lightning; do
  if ! $PY -c "import $m" 2>/dev/null; then say "FATAL: $m does not import; see $OUT/env.txt"; exit 3; fi
done

# ---------------------------------------------------------------------------------- benchmarks
if [[ $SMOKE == 1 ]]; then
  SHAPE=(--d-model 64 --n-layers 2 --n-heads 2 --d-ff 128 --block 64 --batch 4 --vocab 1024
         --steps "${STEPS:-3}" --warmup 2 --rounds "${ROUNDS:-1}"
         --peak-n 512 --text /nonexistent --gen-chars 200000)
  LIMIT_EAGER=300; LIMIT_COMPILE=300; DEVICE=auto
else
  # GPT-2 small: 85M non-embedding params, vocab 32768 (124M-class), T=1024, 16K tokens per step
  SHAPE=(--d-model 768 --n-layers 12 --n-heads 12 --d-ff 3072 --block 1024 --batch 16 --vocab 32768
         --steps "${STEPS:-30}" --warmup 5 --rounds "${ROUNDS:-3}" --peak-n 8192)
  LIMIT_EAGER=120; LIMIT_COMPILE=210; DEVICE=cuda   # + install/checks: under 6 minutes in all
fi
COMMON=(--device $DEVICE --precision bf16-mixed --workdir /tmp/lmforge-gpu-bench)

say "eager run (limit ${LIMIT_EAGER}s)"
timeout $LIMIT_EAGER $PY benchmarks/pretrain_throughput.py "${SHAPE[@]}" "${COMMON[@]}" \
  --out "$OUT/pretrain_eager.json" 2>&1 | grep -v '^USDT' | tee "$OUT/pretrain_eager.log"
RC_EAGER=${PIPESTATUS[0]}
say "eager rc=$RC_EAGER"

say "compiled run (limit ${LIMIT_COMPILE}s)"
timeout $LIMIT_COMPILE $PY benchmarks/pretrain_throughput.py "${SHAPE[@]}" "${COMMON[@]}" --compile --no-sdpa-probe \
  --no-full --out "$OUT/pretrain_compile.json" 2>&1 | grep -v '^USDT' | tee "$OUT/pretrain_compile.log"
RC_COMPILE=${PIPESTATUS[0]}
say "compile rc=$RC_COMPILE"
rm -rf /tmp/lmforge-gpu-bench

# ---------------------------------------------------------------------------------- summary
$PY - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
for name in ("pretrain_eager", "pretrain_compile"):  # each result's own table (benchmarks/harness.py report)
    f = Path(sys.argv[1]) / f"{name}.json"
    rows = json.loads(f.read_text())["summary"] if f.exists() else [["no result", ""]]
    width = max(len(key) for key, _ in rows)
    print(name, *(f"  {key.ljust(width)}  {value}" for key, value in rows), sep="\n")
EOF
say "done; results in $OUT"
[[ $RC_EAGER == 0 && $RC_COMPILE == 0 ]]
