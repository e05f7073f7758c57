#!/usr/bin/env python3
"""test-bench: `rwkvctl bench` from the command line on a small random model: the summary, --json
as one object alone on stdout (what bench/kernels/perf-table and jq read), and bad arguments as one
"rwkvctl:" line on stderr."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402
from rwkvtest import check  # noqa: E402


def main():
    ctl = rt.need_rwkvctl()
    tmp = tempfile.mkdtemp(prefix="rwkv-cli-bench-")
    try:
        # A name that JSON must escape.
        m = os.path.join(tmp, 'a "quoted" \\ name.rwkv')
        r = subprocess.run([ctl, "model", "random", "--layers", "1", "--embd", "64", "--vocab", "256", m],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, "model random: %r" % r.stderr)

        def bench(*args):
            return subprocess.run([ctl, "bench", "--model", m, "--threads", "1", "--prompt", "16", "--gen", "8"]
                                  + list(args), capture_output=True, timeout=120)

        r = bench("--batch", "2,4")
        out = r.stdout.decode()
        check(r.returncode == 0 and not r.stderr, "bench: %d %r" % (r.returncode, r.stderr))
        for want in ("prefill:", "decode:", "batch   2:", "batch   4:", "peak RSS:", "L1 C64 V256"):
            check(want in out, "the summary lacks %r:\n%s" % (want, out))

        for args in (("--json",), ("--json", "--batch", "3")):
            r = bench(*args)
            lines = r.stdout.decode().splitlines()
            check(r.returncode == 0 and len(lines) == 1, "bench %s: not one line: %r" % (" ".join(args), r.stdout))
            j = json.loads(lines[0])
            check(j["model"] == os.path.basename(m) and j["n_layer"] == 1 and j["n_embd"] == 64 and j["prompt"] == 16
                  and j["gen"] == 8 and j["threads"] == 1 and j["repeat"] == 3, "bench --json: %r" % j)
            check(j["prefill_tok_s"] > 0 and j["decode_tok_s"] > 0 and j["latency_ms_p99"] >= j["latency_ms_p50"] > 0,
                  "bench --json figures: %r" % j)
            check(sorted(j["batch_tok_s"]) == (["3"] if "3" in args else ["8"]), "batch_tok_s %r" % j["batch_tok_s"])
        j = json.loads(subprocess.run([ctl, "--json", "bench", "--model", m, "--prompt", "4", "--gen", "4", "--repeat", "2"],
                                      capture_output=True, timeout=120).stdout)
        check(j["gen"] == 4 and j["repeat"] == 2 and j["decode_tok_s"] > 0, "global --json, --repeat 2: %r" % j)

        for args in (["bench"], ["bench", "--model", os.path.join(tmp, "missing.rwkv")], ["bench", "--model", m, "--bogus"],
                     ["bench", "--model", m, "--gen", "0"], ["bench", "--model", m, "--batch", "x"],
                     ["bench", "--model", m, "--threads", "-1"], ["bench", "--model", m, "--repeat", "0"]):
            r = subprocess.run([ctl] + args, capture_output=True, timeout=60)
            err = r.stderr.decode(errors="replace")
            check(r.returncode != 0 and err.count("\n") == 1 and err.startswith("rwkvctl: ") and not r.stdout,
                  "%s: exit %d, stderr %r, stdout %r" % (" ".join(args[1:]), r.returncode, err, r.stdout))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    rt.run_test(main)
