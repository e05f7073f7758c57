#!/usr/bin/env python3
"""Runs bench-ring against a real rwkvd on a private dbus-daemon (tests/lib/rwkvtest.py).

    RWKV_BUILD_ROOT=build bench/ring/bench-ring-daemon.py [--tokens N] [--threads T] [--streams 1,8,64]
        [--model FILE [--vocab VOCAB]]

Without --model the daemon serves the tests' small random model; --vocab gives a model without an
embedded tokenizer (rwkvctl model random) the World vocabulary.
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
ap.add_argument("--vocab")
ap.add_argument("--streams", default="1,8,64")
a = ap.parse_args()
bench = os.path.join(rwkvtest.build_root(), "bench", "ring", "bench-ring")
with rwkvtest.Bus() as bus:
    config = {"limits": {"max_tokens_per_request": max(a.tokens, 4096), "max_generations_per_user": 128,
                         "max_streams": 128}}
    args = ["--vocab", a.vocab] if a.vocab else []
    with rwkvtest.Daemon(bus, model=a.model, args=args, threads=a.threads, config=config) as d:
        rc = subprocess.run([bench, "--address", bus.address, "--tokens", str(a.tokens),
                             "--streams", a.streams]).returncode
sys.exit(rc)
