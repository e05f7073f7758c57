#!/usr/bin/env bash
# bench/sessions/run.sh BUILD_DIR [PROMPT_TOKENS]: the session store benchmark plus the headline
# ratio, resume from disk vs re-prefilling the conversation. For each RWKV-7 shape it makes a
# random f16 model with `rwkvctl model random`, measures prefill tokens/s with `rwkvctl bench`
# (PROMPT_TOKENS, default 256; 2k/8k/32k re-prefill times are extrapolated linearly from it, which
# flatters re-prefill: RWKV prefill is linear in tokens), then runs bench-store with those rates.
# Needs ~4.5 GB of free space in TMPDIR for the three models (removed afterwards).
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [PROMPT_TOKENS]}
prompt=${2:-256}
rwkvctl=$build/tools/rwkvctl/rwkvctl
bench=$build/bench/sessions/bench-store
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/rwkvd-sessions-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

rates=()
for shape in "0.1B 12 768" "0.4B 24 1024" "1.5B 24 2048"; do
        set -- $shape
        "$rwkvctl" model random --version 7 --layers "$2" --embd "$3" --vocab 65536 --type f16 "$tmp/m.rwkv" >/dev/null
        tps=$("$rwkvctl" bench --model "$tmp/m.rwkv" --prompt "$prompt" --gen 1 --json |
              python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["prefill_tok_s"])')
        echo "$1: prefill $tps tokens/s ($prompt-token prompt, $(nproc) CPUs)"
        rates+=("$1=$tps")
        rm -f "$tmp/m.rwkv"
done
"$bench" --codecs --prefill-tps "$(IFS=,; echo "${rates[*]}")" --dir "$tmp/state"
