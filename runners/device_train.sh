#!/usr/bin/env bash
# Train a grid for a fixed time with K plain worker processes sharing --out, then stop them
# and leave a directory that resumes cleanly on another machine (claims, checkpoints and temp
# files removed: a run killed mid-way restarts from step 0 on the next call).
#
#   runners/device_train.sh GRID OUT SECONDS cpu|cuda K LOGDIR
#
# cpu: K processes, 1 thread each, CUDA hidden (--cpu). cuda: K processes sharing the one visible
# GPU (each a plain single process, so each uses cuda:0; no `accelerate launch`, whose ranks
# would ask for cuda:<rank>). Used for data/cpu_ladder_v2_h100 (its DATA_CARD.md).
set -u
GRID=$1 OUT=$2 SECS=$3 MODE=$4 K=$5 LOGDIR=$6
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$LOGDIR"
pids=()
for i in $(seq 1 "$K"); do
    if [ "$MODE" = cpu ]; then
        CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 "$PY" runners/train_grid.py "$GRID" --out "$OUT" --threads 1 --cpu \
            > "$LOGDIR/w$i.log" 2>&1 &
    else
        OMP_NUM_THREADS=1 "$PY" runners/train_grid.py "$GRID" --out "$OUT" --threads 1 > "$LOGDIR/w$i.log" 2>&1 &
    fi
    pids+=($!)
    sleep 0.2
done
end=$((SECONDS + SECS))
while [ "$SECONDS" -lt "$end" ]; do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 5
done
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
sleep 3
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
wait 2>/dev/null
RUNS="$OUT/runs"; [ -d "$OUT/cells" ] && RUNS="$OUT/cells"   # an old-layout OUT keeps cells/
find "$RUNS" \( -name claim -o -name '.claim.stale.*' -o -name '*.tmp' -o -name 'checkpoint.pt' \
    -o -name 'attempts.json' \) -delete 2>/dev/null
echo "device_train: stopped after $SECONDS s; finished runs: $(ls "$RUNS"/*/result.json 2>/dev/null | wc -l)"
