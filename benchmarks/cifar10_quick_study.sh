#!/usr/bin/env bash
# The cifar10_quick study of docs/results/cifar10_quick.md, one run after another, on the
# 45,000 / 5,000 split of DATA/train (data.options.val_per_class=500). Every run resumes with
# --resume auto and checkpoints every 10 minutes, so the script can be stopped and started again:
#   benchmarks/cifar10_quick_study.sh /data/cifar10-jpeg runs/study     (run by hand, in the background)
set -u
DATA=${1:?usage: cifar10_quick_study.sh DATA_DIR OUT_DIR}; OUT=${2:?usage: cifar10_quick_study.sh DATA_DIR OUT_DIR}
COMMON="data.root=$DATA data.options.val_per_class=500 train.checkpoint_every=10min"
OFF="model.neuron=staa model.gc=false model.pe=none model.sa=false model.tsrd_p=0"   # Table 4's baseline
mkdir -p "$OUT/logs" "$OUT/done"
run() {  # folder, name, overrides...: skipped once finished
  local dir=$1 name=$2; shift 2
  [ -f "$OUT/done/$name" ] && return 0
  echo "== $(date -u +%FT%TZ) start $name" >> "$OUT/queue.log"
  if staa-snn train --config cifar10_quick $COMMON "$@" output.dir="$OUT/$dir" output.name="$name" --resume auto \
      > "$OUT/logs/$name.log" 2>&1; then touch "$OUT/done/$name"; fi
  echo "== $(date -u +%FT%TZ) end $name" >> "$OUT/queue.log"
}
for s in 0 1 2; do   # the names of the table4 rows are staa-snn ablate's, so ablate reads them back
  run quick lif_seed$s model.neuron=lif train.seed=$s
  run ablate/table4 baseline_seed$s $OFF train.seed=$s
  run ablate/table4 gc_pe_sa_tsrd_seed$s model.neuron=staa model.gc=true model.pe=learnable model.sa=true \
      model.tsrd_p=0.1 train.seed=$s
done
