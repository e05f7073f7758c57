#!/usr/bin/env python3
"""An unfinished UTF-8 character at the end of a turn is carried into the next one.

A byte-level model emits one byte per token, so a generation cut by max tokens often stops inside a
multi-byte character (or inside an invalid sequence). The session keeps those held-back bytes (in
RAM, in its file and in its turn checkpoints) and the next generation with an empty prompt sends
them completed by its own bytes; so, byte for byte (no U+FFFD folding),

    text(k tokens) + text(N - k more, empty prompt) == text(N tokens)

for every k, across a kill -9 and restart between the two parts, one token per turn, and after
rewind / fork to a turn that starts with a carried character. A turn with a non-empty prompt sends
a carried character as U+FFFD first. Seeded sampling with top_p 0.9 (the setting that used to split
characters at turn boundaries in sessions-resume)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessionstest as st  # noqa: E402
from sessionstest import rwkvtest  # noqa: E402

N = 24
PROMPT = "Once"
OPTS = dict(temperature=1.0, top_p=0.9)


def valid_non_ascii(text):
    return [c for c in text if ord(c) > 0x7F and c != "\ufffd"]


def restart(d, bus, state_dir):
    d.kill()  # SIGKILL: only what reached the disk counts
    return rwkvtest.Daemon(bus, model=d.model, state_dir=state_dir).start()


def body():
    with rwkvtest.Bus() as bus:
        model = rwkvtest.test_model(bus.tmp)
        state_dir = os.path.join(bus.tmp, "state")
        d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
        try:
            # A random model emits random bytes: search a seed whose text holds a valid multi-byte
            # character (most hold one; invalid sequences are carried the same way, as U+FFFD).
            for SEED in range(1, 200):
                ref, end = st.generate(bus, "ref-%d" % SEED, PROMPT, N, seed=SEED, **OPTS)
                rwkvtest.check(end["tokens_generated"] == N, "reference: %r" % end)
                if valid_non_ascii(ref):
                    break
            rwkvtest.check(valid_non_ascii(ref), "no seed gives a multi-byte character")

            # One token per turn: a turn whose token only starts (or continues) a character sends
            # no text; its bytes come with a later turn. Restart right after such a turn once.
            got, held_turns, restarted_held, step_texts = "", [], False, []
            for i in range(N):
                text, end = st.generate(bus, "steps", PROMPT if i == 0 else "", 1,
                                        **(dict(OPTS, seed=SEED) if i == 0 else OPTS))
                got += text
                step_texts.append(text)
                if text == "":
                    held_turns.append(i + 1)
                    if not restarted_held:
                        st.wait_committed(state_dir, "steps", end["session_tokens"])
                        d = restart(d, bus, state_dir)
                        restarted_held = True
            rwkvtest.check(held_turns, "no turn ended inside a character: the test proves nothing (%r)" % ref)
            # A one-byte turn whose text is a whole valid character completed one begun before it.
            rwkvtest.check(any(valid_non_ascii(t) for t in step_texts),
                           "no character was completed across turns: %r" % step_texts)
            rwkvtest.check(got == ref, "one token per turn (held after turns %r):\n  %r\nin one go:\n  %r"
                           % (held_turns, got, ref))

            # k + (N - k) at every k, the daemon killed between the parts.
            first = {}
            for k in range(1, N):
                first[k], end = st.generate(bus, "split-%d" % k, PROMPT, k, seed=SEED, **OPTS)
                st.wait_committed(state_dir, "split-%d" % k, end["session_tokens"])
            d = restart(d, bus, state_dir)
            for k in range(1, N):
                rest, _ = st.generate(bus, "split-%d" % k, "", N - k, **OPTS)
                rwkvtest.check(first[k] + rest == ref, "split at %d: %r + %r != %r" % (k, first[k], rest, ref))

            # A turn that starts with a carried character: rewind to it and fork at it (from RAM,
            # then from the checkpoint files after a restart) give the same text again.
            k = held_turns[0]
            t1, _ = st.generate(bus, "turns", PROMPT, k, seed=SEED, **OPTS)
            t2, end = st.generate(bus, "turns", "", N - k, seed=SEED + 1, **OPTS)
            rwkvtest.check(st.wait_checkpoint(state_dir, "turns", 2), "no checkpoint of turn 2")
            st.wait_committed(state_dir, "turns", end["session_tokens"])
            d.call("ForkSession", "ssu", "turns", "turns-fork", 2)
            again, _ = st.generate(bus, "turns-fork", "", N - k, seed=SEED + 1, **OPTS)
            rwkvtest.check(again == t2, "fork at turn 2: %r, first time %r" % (again, t2))
            d.call("RewindSession", "su", "turns", 2)
            again, end = st.generate(bus, "turns", "", N - k, seed=SEED + 1, **OPTS)
            rwkvtest.check(again == t2, "rewind to turn 2: %r, first time %r" % (again, t2))
            st.wait_committed(state_dir, "turns", end["session_tokens"])
            d = restart(d, bus, state_dir)
            d.call("RewindSession", "su", "turns", 2)
            again, _ = st.generate(bus, "turns", "", N - k, seed=SEED + 1, **OPTS)
            rwkvtest.check(again == t2, "rewind to turn 2 after a restart: %r, first time %r" % (again, t2))
            d.call("ForkSession", "ssu", "turns", "turns-fork2", 2)
            again, _ = st.generate(bus, "turns-fork2", "", N - k, seed=SEED + 1, **OPTS)
            rwkvtest.check(again == t2, "fork at turn 2 after a restart: %r, first time %r" % (again, t2))

            # A prompt after a carried character: it can no longer complete, it opens the text as
            # U+FFFD; the turn after that starts clean.
            st.generate(bus, "prompted", PROMPT, k, seed=SEED, **OPTS)
            text, _ = st.generate(bus, "prompted", " and", 4, seed=3, **OPTS)
            rwkvtest.check(text.startswith("\ufffd"), "no U+FFFD for the dropped character: %r" % text)
            rwkvtest.check(not st.corrupt_files(state_dir), "corrupt files: %s" % st.corrupt_files(state_dir))
        finally:
            d.kill()


if __name__ == "__main__":
    rwkvtest.run_test(body)
