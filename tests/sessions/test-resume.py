#!/usr/bin/env python3
"""Exact resume across kill -9, and rewind/regenerate from turn checkpoints on disk.

For greedy and for seeded sampling, N tokens in one go must equal, byte for byte, k tokens, kill -9
once the commit is on disk, restart, more tokens with an empty prompt, kill -9 again, restart, the
rest (several k).
Then three turns, rewind to turn 2 and generate with turn 2's prompt and seed: the same answer as
the first time; the same again for turn 3 (regenerate the last turn). With --after-restart, each
rewind follows a kill -9 and restart, so it must come from the checkpoint files on disk."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessionstest as st  # noqa: E402
from sessionstest import rwkvtest  # noqa: E402

N = 24
PROMPT = "The quick brown fox"
SPLITS = [(1, 8), (5, 5), (12, 6)]  # k tokens, then m more, then N - k - m
# top_p 0.9 on purpose: this seeded run then splits a 2-byte character at a turn boundary (it once
# needed top_p 1 to pass); the session carries it into the next turn (see sessions-utf8-carry).
MODES = {"greedy": dict(temperature=0.0), "seeded": dict(temperature=1.0, top_p=0.9, seed=4242)}
AFTER_RESTART = "--after-restart" in sys.argv


def restart(d, bus, state_dir):
    d.kill()  # SIGKILL: no shutdown commit, only what reached the disk counts
    nd = rwkvtest.Daemon(bus, model=d.model, state_dir=state_dir)
    return nd.start()


def body():
    with rwkvtest.Bus() as bus:
        model = rwkvtest.test_model(bus.tmp)
        state_dir = os.path.join(bus.tmp, "state")
        d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
        try:
            ref = {}
            for mode, opts in MODES.items():
                ref[mode], end = st.generate(bus, "ref-" + mode, PROMPT, N, **opts)
                rwkvtest.check(end["tokens_generated"] == N, "%s reference: %r" % (mode, end))

            # Phase 1: k tokens in every session, committed, then the daemon dies.
            got = {}
            for mode, opts in MODES.items():
                for k, _ in SPLITS:
                    sid = "%s-%d" % (mode, k)
                    toks, end = st.generate(bus, sid, PROMPT, k, **opts)
                    got[sid] = toks
                    rwkvtest.check(end["tokens_generated"] == k, "%s: %r" % (sid, end))
                    st.wait_committed(state_dir, sid, end["session_tokens"])
            d = restart(d, bus, state_dir)

            # Phase 2: m more with an empty prompt (the stored RNG stream continues: no seed).
            for mode, opts in MODES.items():
                cont = dict(opts)
                cont.pop("seed", None)
                for k, m in SPLITS:
                    sid = "%s-%d" % (mode, k)
                    toks, end = st.generate(bus, sid, "", m, **cont)
                    got[sid] += toks
                    st.wait_committed(state_dir, sid, end["session_tokens"])
            d = restart(d, bus, state_dir)

            # Phase 3: the rest.
            for mode, opts in MODES.items():
                cont = dict(opts)
                cont.pop("seed", None)
                for k, m in SPLITS:
                    sid = "%s-%d" % (mode, k)
                    toks, _ = st.generate(bus, sid, "", N - k - m, **cont)
                    got[sid] += toks
                    rwkvtest.check(got[sid] == ref[mode],
                                   "%s: resumed after %d and %d tokens:\n  %r\nin one go:\n  %r"
                                   % (sid, k, k + m, got[sid], ref[mode]))

            # Rewind and regenerate, within one daemon's life (checkpoints in RAM), and with
            # --after-restart from the checkpoints on disk after kill -9.
            prompts = ["Once upon a time", " and then", " finally"]
            answers = []
            for i, p in enumerate(prompts):
                toks, end = st.generate(bus, "rw", p, 8, temperature=1.0, seed=100 + i)
                answers.append(toks)
            for c in range(1, 4):
                rwkvtest.check(st.wait_checkpoint(state_dir, "rw", c), "no checkpoint of turn %d on disk" % c)
            st.wait_committed(state_dir, "rw", end["session_tokens"])
            if AFTER_RESTART:
                d = restart(d, bus, state_dir)
            d.call("RewindSession", "su", "rw", 2)
            toks, _ = st.generate(bus, "rw", prompts[1], 8, temperature=1.0, seed=101)
            rwkvtest.check(toks == answers[1], "turn 2 after rewind: %r, first time: %r" % (toks, answers[1]))
            toks, end = st.generate(bus, "rw", prompts[2], 8, temperature=1.0, seed=102)
            rwkvtest.check(toks == answers[2], "turn 3 after rewind: %r, first time: %r" % (toks, answers[2]))
            st.wait_committed(state_dir, "rw", end["session_tokens"])
            if AFTER_RESTART:
                d = restart(d, bus, state_dir)
            d.call("RewindSession", "su", "rw", 3)  # regenerate the last turn
            toks, _ = st.generate(bus, "rw", prompts[2], 8, temperature=1.0, seed=102)
            rwkvtest.check(toks == answers[2], "regenerated turn 3: %r, first time: %r" % (toks, answers[2]))

            rwkvtest.check(not st.corrupt_files(state_dir), "corrupt files: %s" % st.corrupt_files(state_dir))

            # Another model on the same state directory never overwrites these sessions' files.
            before = st.peek(state_dir, "greedy-1")
            d.kill()
            d = rwkvtest.Daemon(bus, model=rwkvtest.test_model(bus.tmp, layers=3), state_dir=state_dir).start()
            try:
                st.generate(bus, "greedy-1", "other model", 4)
            except AssertionError:
                pass  # refusing is right too
            d.stop()  # SIGTERM: the daemon commits what it holds before it exits
            after = st.peek(state_dir, "greedy-1")
            rwkvtest.check(after == before, "another model's daemon replaced greedy-1: %r -> %r" % (before, after))
        finally:
            d.kill()


if __name__ == "__main__":
    rwkvtest.run_test(body)
