#!/usr/bin/env bash
# GPU figures for benchmarks/README.md section 4: streamed vs data-resident training, 5k and 20k genes, one CUDA GPU,
# the reader in this process (0 workers) and in 8 DataLoader worker processes. One run, estimated 6-9 minutes on a
# 16-core node (not yet run: no GPU machine so far); add --mixed-precision for bf16 rows (a few minutes more).
# requirements.txt pins torch's CPU wheel; on the GPU machine install the CUDA build of the same version first, e.g.
#   .venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
# Writes 200,000-cell data sets (0.8 and 3.2 GB at 10 % non-zero) under benchmarks/results/scale/, deleted at the end.
# Rows per gene count: stats, read and stream at 0 and 8 workers, memory (the same cells resident on the GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.cuda.get_device_name())"
nice $PY benchmarks/scale.py --device cuda --genes 5000,20000 --cells 200000 --memory-cells 200000 \
    --batch-size 1024 --chunk-size 16384 --buffer-size 131072 --threads 8 --workers 0,8 --skip-ddp --timeout 240 "$@"
