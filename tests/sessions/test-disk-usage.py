#!/usr/bin/env python3
"""GetSession's disk_bytes and checkpoints say what is on disk: disk_bytes is the session file plus
its turn checkpoint files, checkpoints the number of those files. Checked against os.stat after
each committed turn (the end record means the commit settled), after a rewind drops checkpoints,
and after restarts (a clean one and kill -9)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessionstest as st  # noqa: E402
from sessionstest import rwkvtest  # noqa: E402


def on_disk(udir, sid):
    """(bytes, checkpoint files) of session sid in its uid folder."""
    size = os.stat(os.path.join(udir, sid + ".session")).st_size
    cdir = os.path.join(udir, sid + ".checkpoints")
    names = [n for n in os.listdir(cdir) if n.startswith("turn-") and n.endswith(".session")] \
        if os.path.isdir(cdir) else []
    size += sum(os.stat(os.path.join(cdir, n)).st_size for n in names)
    return size, len(names)


def reported(d, sid):
    info = d.call("GetSession", "s", sid)[0]
    return info["disk_bytes"]["data"], info["checkpoints"]["data"]


def expect(d, udir, sid, checkpoints, what):
    disk = on_disk(udir, sid)
    rwkvtest.check(disk[1] == checkpoints, "%s: %d checkpoint files on disk, expected %d" % (what, disk[1], checkpoints))
    got = reported(d, sid)
    rwkvtest.check(got == disk, "%s: GetSession says (disk_bytes, checkpoints) = %s, the files %s" % (what, got, disk))


def body():
    with rwkvtest.Bus() as bus:
        model = rwkvtest.test_model(bus.tmp)
        state_dir = os.path.join(bus.tmp, "state")
        udir = os.path.join(state_dir, str(os.geteuid()))
        d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
        try:
            st.generate(bus, "d1", "Once upon a time", 6)
            expect(d, udir, "d1", 1, "after turn 1")
            st.generate(bus, "d1", " and then", 6)
            expect(d, udir, "d1", 2, "after turn 2")
            rwkvtest.check(d.stop() == 0, "exit status")

            d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
            expect(d, udir, "d1", 2, "after a restart")
            st.generate(bus, "d1", " finally", 6)
            expect(d, udir, "d1", 3, "after turn 3, loaded back")

            # Rewind to turn 2: turns 2 and 3 lose their checkpoints (on the I/O thread, after the
            # reply), and the session is committed again.
            d.call("RewindSession", "su", "d1", 2)
            deadline = time.monotonic() + 20
            while on_disk(udir, "d1")[1] != 1 or reported(d, "d1") != on_disk(udir, "d1"):
                rwkvtest.check(time.monotonic() < deadline, "after a rewind: GetSession says %s, the files %s"
                               % (reported(d, "d1"), on_disk(udir, "d1")))
                time.sleep(0.02)
            expect(d, udir, "d1", 1, "after a rewind")

            d.kill()
            d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
            expect(d, udir, "d1", 1, "after kill -9 and a restart")

            # A checkpoint that fails its checks when a rewind reads it is moved aside: the counts
            # follow without waiting for the next commit.
            for prompt in ("One", " two", " three"):
                st.generate(bus, "c1", prompt, 4)
            rwkvtest.check(d.stop() == 0, "exit status")
            turn2 = os.path.join(udir, "c1.checkpoints", "turn-0000000002.session")
            with open(turn2, "r+b") as f:
                f.seek(200)
                b = f.read(1)
                f.seek(200)
                f.write(bytes([b[0] ^ 0xff]))
            d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
            d.call("ForkSession", "ssu", "c1", "c1-copy", 0)  # c1 in RAM, its last turn's checkpoint too
            d.expect_error("Corrupt", "RewindSession", "'c1'", "uint32 2")
            deadline = time.monotonic() + 10
            while reported(d, "c1") != on_disk(udir, "c1"):
                rwkvtest.check(time.monotonic() < deadline, "after a corrupt checkpoint: GetSession says %s, the "
                               "files %s" % (reported(d, "c1"), on_disk(udir, "c1")))
                time.sleep(0.02)
            rwkvtest.check(on_disk(udir, "c1")[1] == 2, "files: %s" % (on_disk(udir, "c1"),))
        finally:
            d.kill()


if __name__ == "__main__":
    rwkvtest.run_test(body)
