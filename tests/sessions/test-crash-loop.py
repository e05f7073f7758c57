#!/usr/bin/env python3
"""Crash loop: ROUNDS times, start generations in several sessions, kill -9 rwkvd at a random moment
(during prefill, decode, or the commit), restart it. After every restart each session's file must
authenticate, hold at least everything that was on disk before the kill (nothing committed is ever
lost or rolled back), the daemon must list exactly what is on disk, and no file may be corrupt.

    test-crash-loop.py ROUNDS [SEED]"""

import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessionstest as st  # noqa: E402
from sessionstest import rwkvtest  # noqa: E402

SESSIONS = ["c0", "c1", "c2"]


def listed(bus):
    r = subprocess.run([st.ctl(), "--address", bus.address, "--json", "session", "list"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    rwkvtest.check(r.returncode == 0, "session list: %s" % r.stderr.decode(errors="replace"))
    return {s["id"]: s for s in json.loads(r.stdout.decode())["sessions"]}


def body():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    with rwkvtest.Bus() as bus:
        model = rwkvtest.test_model(bus.tmp)
        state_dir = os.path.join(bus.tmp, "state")
        d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
        floor = {sid: (0, 0) for sid in SESSIONS}  # (tokens, turns) known to be on disk
        kills_busy = 0
        try:
            for rnd in range(rounds):
                clients = []
                for sid in SESSIONS:
                    cmd = [st.ctl(), "--address", bus.address, "generate", "--session", sid, "--max-tokens",
                           str(rng.randint(1, 400)), "--temperature", "1.0"]
                    if rng.random() < 0.7:
                        cmd.append("round %d of %s. " % (rnd, sid))
                    clients.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL))
                time.sleep(rng.uniform(0, 0.08))
                for sid in SESSIONS:
                    p = st.peek(state_dir, sid)
                    if p:
                        floor[sid] = max(floor[sid], p[:2])
                kills_busy += any(c.poll() is None for c in clients)
                d.kill()
                for c in clients:
                    c.wait(60)
                # The disk now holds what it holds: every file complete, authentic, not behind.
                for sid in SESSIONS:
                    p = st.peek(state_dir, sid)
                    if floor[sid] != (0, 0):
                        rwkvtest.check(p is not None, "round %d: %s vanished (had %r)" % (rnd, sid, floor[sid]))
                    if p:
                        rwkvtest.check(p[:2] >= floor[sid], "round %d: %s went back from %r to %r"
                                       % (rnd, sid, floor[sid], p[:2]))
                        floor[sid] = p[:2]
                d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
                temps = [f for r, _, fs in os.walk(state_dir) for f in fs if f.startswith(".#")]
                rwkvtest.check(not temps, "round %d: temp files left after the restart: %s" % (rnd, temps))
                ls = listed(bus)
                for sid in SESSIONS:
                    if floor[sid] != (0, 0):
                        rwkvtest.check(sid in ls, "round %d: %s not listed after restart" % (rnd, sid))
                        rwkvtest.check(ls[sid]["tokens"] == floor[sid][0],
                                       "round %d: %s listed with %d tokens, %d on disk"
                                       % (rnd, sid, ls[sid]["tokens"], floor[sid][0]))
                bad = st.corrupt_files(state_dir)
                rwkvtest.check(not bad, "round %d: corrupt files %s" % (rnd, bad))
            # Every session still loads and continues.
            for sid in SESSIONS:
                if floor[sid] != (0, 0):
                    _, end = st.generate(bus, sid, "", 3, temperature=1.0)
                    rwkvtest.check(end["session_tokens"] >= floor[sid][0] + 3, "%s: %r" % (sid, end))
            print("%d rounds, %d kills with generations running; final (tokens, turns) %r"
                  % (rounds, kills_busy, floor))
        finally:
            d.kill()


if __name__ == "__main__":
    rwkvtest.run_test(body)
