# base.sh - a tiny pretrained base for the runs that need one (fedbiot starts from
# model.init), sourced after tiny.sh. make_base DIR [--set k=v]...: tiny.ini's model
# made dense with 4 blocks (the options may change that), trained with fedavg for 2
# rounds and exported as a Hugging Face folder into DIR. A few seconds.
make_base() {
  local dir=$1; shift
  mpi 2 run "$TMP/tiny.ini" -q --overwrite --set fl.strategy=fedavg --set model.moe_layers=none \
    --set model.layers=4 --set fl.sample_fraction=1 "$@" --set run.output="$TMP/base-run.h5" \
    || { cat "$TMP/out"; fail "make_base: training the base"; }
  mpi 1 export --checkpoint "$TMP/base-run.h5" --overwrite "$dir" || { cat "$TMP/out"; fail "make_base: export"; }
}
