#!/usr/bin/env bash
# Regenerate reports/leaderboards/screenshot.png (the README's picture of the HTML board) from a real board:
# the GRID fixtures prepared, the three built-in references scored with every metric, the board rendered and
# photographed by headless Chromium (Debian: apt-get install chromium). Work files go to a temp folder.
# Usage (from the repository root): bash reports/leaderboards/make_screenshot.sh [FIXTURES_DIR]
# (~3.5 min on a busy 2-core machine; WORK=DIR keeps the work files there and reuses a finished board)
set -euo pipefail
ROOT=$(pwd)
FIXTURES=${1:-../shared/fixtures}
TB="$ROOT/.venv/bin/talkbench"
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi
mkdir -p "$WORK"
export MLFLOW_TRACKING_URI="sqlite:///$WORK/mlflow.db" TALKBENCH_TASKS_DIR="$WORK/tasks"
export TALKBENCH_ARTIFACT_ROOT="file://$WORK/mlartifacts"

if [ ! -f "$WORK/board.html" ]; then
mkdir -p "$WORK/grid"
ln -sf "$(realpath "$FIXTURES")"/grid/*.mpg "$WORK/grid/"
"$TB" -q prepare --dataset grid --input "$WORK/grid" --output "$WORK/shards" \
    -o split.test_fraction=0.99 -o split.val_fraction=0.0
"$TB" bench make-task --shards "$WORK/shards" --name grid-fixtures
"$TB" -q bench run --task grid-fixtures --no-keep-videos --outputs-dir "$WORK/outputs" \
    --submission builtin:ground-truth --submission builtin:static-frame --submission 'builtin:shifted?k=5'
"$TB" bench leaderboard --task grid-fixtures --format html --out "$WORK/board.html"
fi
chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$WORK/profile" \
    --window-size=1800,1000 --hide-scrollbars --screenshot="$WORK/board.png" "file://$WORK/board.html" 2>/dev/null
"$ROOT/.venv/bin/python" - "$WORK/board.png" "$ROOT/reports/leaderboards/screenshot.png" <<'EOF'
import sys

import numpy as np
from PIL import Image

img = Image.open(sys.argv[1]).convert("RGB")
ink = np.asarray(img.convert("L")) < 250  # trim the empty right margin
right = int(np.nonzero(ink.any(axis=0))[0].max()) + 24
img.crop((0, 0, min(right, img.width), img.height)).save(sys.argv[2], optimize=True)
print(f"wrote {sys.argv[2]}")
EOF
