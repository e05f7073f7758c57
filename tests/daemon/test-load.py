#!/usr/bin/env python3
"""test-load: 64 clients each running a generation at once (all complete; completion-time spread and
daemon RSS reported), then 10,000 malformed or hostile calls after which the daemon still serves."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402


def main():
    client = os.path.join(rt.build_root(), "tests", "daemon", "rwkv-test-client")
    with rt.Bus() as bus:
        cfg = {"limits": {"max_generations_per_user": 64, "max_streams": 128, "max_prompt_bytes": "1M"},
               "scheduler": {"max_batch": 64}}
        with rt.Daemon(bus, config=cfg, threads=2) as d:
            rss0 = d.rss_bytes()
            r = subprocess.run([client, bus.address, "gen", "64", "32"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=150)
            rt.check(r.returncode == 0, "64 clients: %s" % r.stderr.decode(errors="replace"))
            mn, mx, ratio, tokens = r.stdout.decode().split()
            rss = d.rss_bytes()
            print("64 clients x 32 tokens: completion min %.3fs max %.3fs ratio %s, %s text records, "
                  "daemon RSS %.1f MiB (idle %.1f MiB), state %d bytes/session"
                  % (int(mn) / 1e6, int(mx) / 1e6, ratio, tokens, rss / 2**20, rss0 / 2**20,
                     d.get_property("StateSize")))
            # A 40 KB prompt is fed in chunks between other users' steps: a short generation
            # started after it finishes long before the big prefill does.
            big = subprocess.Popen([client, bus.address, "run", "", "@40000", "4"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
            time.sleep(0.3)
            r = subprocess.run([client, bus.address, "run", "", "Hello", "16"], capture_output=True, timeout=60)
            rt.check(r.returncode == 0, "short generation: %s" % r.stderr)
            short_s = int(r.stderr.split()[-1]) / 1e6
            big_still_running = big.poll() is None
            _, err = big.communicate(timeout=120)
            rt.check(big.returncode == 0, "big prompt: %s" % err)
            big_s = int(err.split()[-1]) / 1e6
            print("40 KB prompt: %.2fs; 16-token generation started 0.3s later: %.2fs (big still running: %s)"
                  % (big_s, short_s, big_still_running))
            rt.check(short_s < big_s - 0.3 or not big_still_running,
                     "a long prefill stalled another generation (%.2fs vs %.2fs)" % (short_s, big_s))
            r = subprocess.run([client, bus.address, "blast", "10000"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=150)
            rt.check(r.returncode == 0, "blast: %s" % r.stderr.decode(errors="replace"))
            print(r.stdout.decode().strip())
            rt.check(d.alive(), "daemon died")
            d.call("CreateSession", "sa{sv}", "after", 0)
            rt.check(d.stop() == 0, "exit status after the blast")


rt.run_test(main)
