# tiny.sh - a small configuration on the fixture corpus, for the runtime tests (sourced).
# Writes $TMP/tiny.ini.
cat >"$TMP/tiny.ini" <<INI
[run]
seed = 7
output = $TMP/tiny.h5
[model]
d_model = 16
heads = 2
layers = 2
context = 16
experts = 4
top_k = 2
[train]
batch = 4
seq_len = 16
eval_batches = 1
warmup_steps = 1
lr = 0.003
[data]
path = $top_srcdir/tests/fixtures/text
client_bytes = 2048
min_domain_bytes = 1024
partition = by_domain
[fl]
clients = 6
rounds = 2
local_steps = 2
sample_fraction = 0.5
[comigs]
generalists = 2
specialists = 1,2
INI
