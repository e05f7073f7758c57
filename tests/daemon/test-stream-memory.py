#!/usr/bin/env python3
"""A streamed prompt costs the daemon constant memory: 2 MiB (default; 4 MiB and more by argument) piped into `rwkvctl generate` (stdin,
so it goes through the ring's input direction) on a tiny byte-level model, with the daemon's RSS
sampled throughout. The daemon keeps only the tokenizer's unconsumed tail of the stream, so its RSS
must grow by far less than the prompt (the old code kept every byte). What it may grow by: the
job's ring (2 x 128 KiB shared pages, counted in RSS while mapped) and its 64 KiB input window.

    test-stream-memory.py [PROMPT_BYTES]
"""

import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402
from rwkvtest import check  # noqa: E402

PROMPT_BYTES = int(sys.argv[1]) if len(sys.argv) > 1 else 2 * 2**20


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    ctl = rt.rwkvctl_path()
    if not ctl:
        rt.skip("rwkvctl is not built")
    with rt.Bus() as bus:
        # A bigger prefill chunk only to keep the test fast; the window it implies (16 chunks of
        # bytes) stays far below the prompt.
        cfg = {"scheduler": {"prefill_chunk": 512}}
        with rt.Daemon(bus, model=rt.test_model(bus.tmp, layers=1), config=cfg) as d:
            env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)

            def generate(data):
                return subprocess.run([ctl, "--json", "generate", "--max-tokens", "1"], input=data,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)

            chunk = b"In the beginning God created the heaven and the earth. " * 64
            # Warm-up: the compute buffers, a ring and the streaming path are allocated once.
            r = generate(chunk * 8)
            check(r.returncode == 0, "warm-up failed: %r" % r.stderr)
            before = status_kib(d.pid(), "VmRSS") * 1024
            data = (chunk * (PROMPT_BYTES // len(chunk) + 1))[:PROMPT_BYTES]
            peak = [before]
            done = threading.Event()

            def sample():
                while not done.wait(0.02):
                    try:
                        peak[0] = max(peak[0], status_kib(d.pid(), "VmRSS") * 1024)
                    except OSError:
                        return

            t = threading.Thread(target=sample)
            t.start()
            t0 = time.monotonic()
            try:
                r = generate(data)
            finally:
                done.set()
                t.join()
            secs = time.monotonic() - t0
            check(r.returncode == 0, "streamed generate failed: %r" % r.stderr)
            end = json.loads(r.stdout.decode().splitlines()[-1])
            # byte-level: one token per byte
            check(end["prompt_tokens"] == len(data), "prompt tokens %d for %d bytes" % (end["prompt_tokens"], len(data)))
            growth = peak[0] - before
            print("streamed %d bytes (%d prompt tokens) in %.1f s: daemon RSS %.2f MiB before, peak %.2f MiB, "
                  "growth %+.0f KiB (%.1f%% of the prompt)"
                  % (len(data), end["prompt_tokens"], secs, before / 2**20, peak[0] / 2**20, growth / 1024,
                     100.0 * growth / len(data)))
            check(growth < len(data) // 4,
                  "daemon RSS grew by %.0f KiB for a %.0f KiB prompt" % (growth / 1024, len(data) / 1024))
            check(d.alive(), "the daemon died")


if __name__ == "__main__":
    main()
