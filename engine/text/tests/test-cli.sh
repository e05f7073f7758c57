#!/bin/sh
# test-cli.sh: rwkvctl tokenize / detokenize, byte-level and World (reference vocabulary when present).
set -eu
RWKVCTL="${RWKV_BUILD_ROOT:?}/tools/rwkvctl/rwkvctl"
[ -x "$RWKVCTL" ] || { echo "SKIP: $RWKVCTL not built"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Byte-level: ids are the bytes.
[ "$(printf 'AB\001' | "$RWKVCTL" tokenize)" = "65 66 1" ] || fail "byte-level tokenize"
[ "$(printf '' | "$RWKVCTL" tokenize)" = "" ] || fail "empty input"
[ "$("$RWKVCTL" detokenize 72 105 | od -An -c | tr -d ' ')" = "Hi" ] || fail "byte-level detokenize"
[ "$(printf 'hi' | "$RWKVCTL" tokenize --json)" = '{"tokens": [104, 105], "count": 2, "bytes": 2}' ] || fail "json"
"$RWKVCTL" detokenize 256 2>/dev/null && fail "id 256 accepted"
"$RWKVCTL" detokenize 12x 2>/dev/null && fail "junk accepted"
"$RWKVCTL" detokenize 99999999999999999999 2>/dev/null && fail "huge id accepted"
"$RWKVCTL" tokenize --vocab /nonexistent </dev/null 2>/dev/null && fail "missing vocab accepted"

# Round trip of arbitrary bytes (NUL, invalid UTF-8), byte-level.
head -c 4096 /dev/urandom > "$tmp/in"
"$RWKVCTL" tokenize < "$tmp/in" > "$tmp/ids"
"$RWKVCTL" detokenize < "$tmp/ids" > "$tmp/out"
cmp -s "$tmp/in" "$tmp/out" || fail "byte-level round trip"

# --model: a byte-level tiny model gives byte ids.
model="${RWKV_REFERENCE_DIR:-}/tiny-rwkv/tiny-rwkv-4v0-660K-FP32.bin"
if [ -r "$model" ]; then
        [ "$(printf 'hi' | "$RWKVCTL" tokenize --model "$model")" = "104 105" ] || fail "--model tokenize"
        [ "$("$RWKVCTL" detokenize --model "$model" 104 105)" = "hi" ] || fail "--model detokenize"
fi

vocab="${RWKV_REFERENCE_DIR:-}/rwkv_vocab_v20230424.txt"
if [ ! -r "$vocab" ]; then
        echo "note: $vocab absent, World checks skipped"
        exit 0
fi
[ "$(printf 'Hello, world!' | "$RWKVCTL" tokenize --vocab "$vocab")" = "33155 45 40213 34" ] || fail "World tokenize"
[ "$("$RWKVCTL" detokenize --vocab "$vocab" 33155,45 40213 34)" = "Hello, world!" ] || fail "World detokenize"
"$RWKVCTL" detokenize --vocab "$vocab" 0 2>/dev/null && fail "id 0 accepted"
# A few hundred KB through a pipe in pieces: same bytes back.
{ head -c 100000 /dev/urandom; i=0; while [ $i -lt 2000 ]; do printf 'The quick brown fox \342\202\254 %d\n' $i; i=$((i+1)); done; } > "$tmp/in2"
"$RWKVCTL" tokenize --vocab "$vocab" < "$tmp/in2" > "$tmp/ids2"
"$RWKVCTL" detokenize --vocab "$vocab" < "$tmp/ids2" > "$tmp/out2"
cmp -s "$tmp/in2" "$tmp/out2" || fail "World round trip"
echo ok
