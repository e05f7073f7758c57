#!/bin/sh
# test-cli.sh: the offline verbs that front engine/arch: rwkvctl eval, run and perplexity.
# Exit 77 (skip) without the reference data; any failed check exits 1 with the reason.
set -eu

ref=${RWKV_REFERENCE_DIR:-}
ctl=${RWKV_BUILD_ROOT:?}/tools/rwkvctl/rwkvctl
if [ -z "$ref" ] || [ ! -f "$ref/README.md" ]; then
        echo "SKIP: reference data not found at '${ref}'" >&2
        exit 77
fi
tiny=$ref/tiny-rwkv
m7=$tiny/tiny-rwkv-7v0-834K-FP32.bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

# eval: 256 logits, one per line, matching the reference to 1e-4, in both modes.
"$ctl" eval --model "$m7" --tokens 34,105,110 --logits --threads 1 >"$tmp/serial"
"$ctl" eval --model "$m7" --tokens 34,105,110 --logits --sequence --threads 2 >"$tmp/seq"
[ "$(wc -l <"$tmp/serial")" -eq 256 ] || fail "eval printed $(wc -l <"$tmp/serial") lines"
od -An -v -f -w4 "$tiny/expected-logits-7v0-834K.bin" >"$tmp/expected"
paste "$tmp/serial" "$tmp/expected" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d }
        END { printf "eval: max abs diff %.3g\n", m; exit !(m <= 1e-4) }' || fail "eval logits differ from the reference"
paste "$tmp/serial" "$tmp/seq" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { exit !(m <= 1e-5) }' ||
        fail "eval --sequence differs from serial"
"$ctl" eval --model "$m7" --tokens 34,105,110 | head -n 1 | grep -q "^ *32 " || fail "eval's top token is not ' '"

# eval: bad input is one line on stderr and a non-zero exit.
for bad in "34,,105" "" "x" "1,2," "99999999999" "256"; do
        if "$ctl" eval --model "$m7" --tokens "$bad" --logits >"$tmp/out" 2>"$tmp/err"; then
                fail "eval accepted --tokens '$bad'"
        fi
        [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "eval --tokens '$bad': expected one error line"
        [ ! -s "$tmp/out" ] || fail "eval --tokens '$bad' printed on stdout"
done
if "$ctl" eval --model /dev/null --tokens 1 2>"$tmp/err"; then fail "eval loaded /dev/null"; fi
grep -q "cannot load" "$tmp/err" || fail "no load error message"

# run: a fixed seed gives fixed text; the prompt may come from stdin; greedy equals top-k 1.
"$ctl" run --model "$m7" --seed 7 --max-tokens 40 --threads 1 "The " >"$tmp/a"
printf 'The ' | "$ctl" run --model "$m7" --seed 7 --max-tokens 40 --threads 2 >"$tmp/b"
cmp -s "$tmp/a" "$tmp/b" || fail "run is not deterministic for a fixed seed (or stdin differs from the argument)"
[ -s "$tmp/a" ] || fail "run generated nothing"
"$ctl" run --model "$m7" --temperature 0 --max-tokens 30 "In" >"$tmp/greedy"
"$ctl" run --model "$m7" --top-k 1 --seed 99 --max-tokens 30 "In" >"$tmp/topk1"
cmp -s "$tmp/greedy" "$tmp/topk1" || fail "greedy and top-k 1 differ"

# run --stop: the text ends right before the first occurrence of the stop string.
stop=$(head -c 12 "$tmp/greedy" | tail -c 3)
"$ctl" run --model "$m7" --temperature 0 --max-tokens 30 --stop "$stop" "In" >"$tmp/stopped"
want=$(awk -v s="$stop" '{ i = index($0, s); if (i) { print substr($0, 1, i - 1); exit } }' "$tmp/greedy")
[ "$(cat "$tmp/stopped")" = "$want" ] || fail "run --stop '$stop': got '$(cat "$tmp/stopped")', want '$want'"
if "$ctl" run --model "$m7" --temperature nan "x" 2>/dev/null; then fail "run accepted a NaN temperature"; fi
if "$ctl" run --model "$m7" --top-p 2 "x" 2>/dev/null; then fail "run accepted top-p 2"; fi
if "$ctl" run --model "$m7" --stop "" "x" 2>/dev/null; then fail "run accepted an empty stop string"; fi

# --json: eval's logits and top tokens, run's stream of text objects and its closing summary.
"$ctl" eval --model "$m7" --tokens 34,105,110 --logits --json >"$tmp/ej"
"$ctl" --json eval --model "$m7" --tokens 255,255 >"$tmp/et"
"$ctl" run --model "$m7" --seed 7 --max-tokens 40 --threads 1 --json "The " >"$tmp/rj"
python3 - "$tmp/ej" "$tmp/et" "$tmp/rj" "$tmp/a" "$tmp/serial" <<'PY' || fail "--json output"
import json, sys
ej = json.load(open(sys.argv[1], encoding="utf-8"))
serial = [float(l) for l in open(sys.argv[5])]
assert ej["logits"] == serial, "eval --json logits differ from the plain ones"
et = json.load(open(sys.argv[2], encoding="utf-8"))
assert len(et["top"]) == 10 and all("text" in t for t in et["top"])
lines = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
text = "".join(l["text"] for l in lines[:-1])
assert lines[-1]["finish"] in ("length", "end", "stop") and lines[-1]["tokens"] <= 40
assert text == open(sys.argv[4], encoding="utf-8", errors="replace", newline="").read(), "run --json text differs"
PY

# perplexity: JSON with consistent figures; a quantized file scores close to FP32 on the same text.
text="$ref/README.md"
"$ctl" perplexity --model "$m7" --json --threads 1 <"$text" >"$tmp/p32"
"$ctl" perplexity --model "$tiny/tiny-rwkv-7v0-834K-Q5_1.bin" --json --threads 2 <"$text" >"$tmp/p5"
cat "$tmp/p32" "$tmp/p5"
python3 - "$tmp/p32" "$tmp/p5" <<'EOF' || fail "perplexity output"
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["scored_tokens"] == a["tokens"] - 1 and a["scored_bytes"] == a["scored_tokens"]  # byte-level model
assert abs(a["perplexity"] - 2 ** a["bits_per_token"]) < 1e-3 * a["perplexity"]
assert 0 < a["bits_per_token"] < 8
assert abs(a["bits_per_token"] - b["bits_per_token"]) < 0.05, (a, b)
EOF
# The grouped types (16-row groups, their own kernels on every ISA) end to end: converted, loaded,
# evaluated in both modes (prefill chunks and one token at a time), they give their row type's
# logits and perplexity (the same values; only the rounding of x and the order of the sums differ).
# $1: grouped type, $2: its row type, $3: how far the row type's perplexity may be from fp32's.
# 13 tokens: in sequence mode one chunk of 8 vectors and one of 5 (the grouped kernels' tiles take
# up to 8 in passes of up to 4)
grouped_tokens=34,105,110,32,116,104,101,32,119,111,114,100,115
check_grouped() {
        "$ctl" model convert "$m7" "$tmp/$1.rwkv" --type "$1" >/dev/null
        "$ctl" model convert "$m7" "$tmp/$2.rwkv" --type "$2" >/dev/null
        "$ctl" model info "$tmp/$1.rwkv" | grep -q "$1: " || fail "model convert --type $1 wrote no $1 tensor"
        "$ctl" perplexity --model "$tmp/$1.rwkv" --json <"$text" >"$tmp/p$1"
        "$ctl" perplexity --model "$tmp/$2.rwkv" --json <"$text" >"$tmp/p$2"
        "$ctl" eval --model "$tmp/$1.rwkv" --tokens "$grouped_tokens" --logits >"$tmp/e$1"
        "$ctl" eval --model "$tmp/$1.rwkv" --tokens "$grouped_tokens" --logits --sequence >"$tmp/e$1s"
        "$ctl" eval --model "$tmp/$2.rwkv" --tokens "$grouped_tokens" --logits >"$tmp/e$2"
        paste "$tmp/e$2" "$tmp/e$1" | awk -v t="$1" '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d }
                END { printf "%s eval: max abs diff to its row type %.3g\n", t, m; exit !(m <= 1e-3) }' ||
                fail "$1 logits"
        paste "$tmp/e$1" "$tmp/e$1s" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { exit !(m <= 0.01) }' ||
                fail "$1 eval --sequence differs from serial"
        python3 - "$tmp/p32" "$tmp/p$2" "$tmp/p$1" "$1" "$2" "$3" <<'EOF' || fail "$1 perplexity"
import json, sys
a, q, x = (json.load(open(p)) for p in sys.argv[1:4])
t, rt, tol = sys.argv[4], sys.argv[5], float(sys.argv[6])
print("perplexity: fp32 %.4f, %s %.4f, %s %.4f" % (a["perplexity"], rt, q["perplexity"], t, x["perplexity"]))
assert abs(x["perplexity"] - q["perplexity"]) < 2e-3 * q["perplexity"], (q, x)
assert abs(x["perplexity"] - a["perplexity"]) < tol * a["perplexity"], (a, x)
EOF
}
check_grouped q8_0x16 q8_0 5e-3
check_grouped q4_0x16 q4_0 5e-2

printf 'x' | "$ctl" perplexity --model "$m7" >/dev/null 2>&1 && fail "perplexity of one token succeeded"
echo "ok"
