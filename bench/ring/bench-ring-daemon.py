#!/usr/bin/env python3
"""Runs bench-ring against a real rwkvd on a private dbus-daemon (tests/lib/rwkvtest.py).

    RWKV_BUILD_ROOT=build bench/ring/bench-ring-daemon.py [--tokens N] [--threads T]
"""
import argparse
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "lib"))
import rwkvtest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--tokens", type=int, default=200)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--model")
a = ap.parse_args()
bench = os.path.join(rwkvtest.build_root(), "bench", "ring", "bench-ring")
with rwkvtest.Bus() as bus:
    config = {"limits": {"max_tokens_per_request": max(a.tokens, 4096), "max_generations_per_user": 128,
                         "max_streams": 128}}
    with rwkvtest.Daemon(bus, model=a.model, threads=a.threads, config=config) as d:
        r = subprocess.run([bench, "--address", bus.address, "--tokens", str(a.tokens)])
        sys.exit(r.returncode)
