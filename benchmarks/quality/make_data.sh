#!/bin/bash
# The quality benchmark's samples (issue 12), cached: `make quality-data` runs this.
#   benchmarks/quality/make_data.sh [DIR]    DIR default: $HEPVLD_QUALITY_DIR or .cache/quality
# train.root: 40k selected events (seed 101); test.root: 16k (seed 202, independent);
# shifted175.root: 16k (seed 303) with m_t = 175 GeV. Existing files are kept.
set -e
PY=${PY:-python}
DIR=${1:-${HEPVLD_QUALITY_DIR:-.cache/quality}}
mkdir -p "$DIR"
cd "$DIR"
gen() {  # gen NAME N SEED [more options]
  local name=$1 n=$2 seed=$3; shift 3
  [ -f "$name.root" ] && return 0
  "$PY" -m hepvld.generate -n "$n" --seed "$seed" --workers 2 --no-progress "$@" -o "$name.tmp.root"
  mv "$name.tmp.root" "$name.root"
}
gen train 40000 101
gen test 16000 202
gen shifted175 16000 303 --top-mass 175
