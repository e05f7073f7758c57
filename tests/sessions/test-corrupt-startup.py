#!/usr/bin/env python3
"""Session files that fail their checks at startup, and a daemon key that fits none of them.

A truncated session file is moved aside at startup with a warning naming the id, the reason and
the new name; its id stays reserved (GetSession, CreateSession, RenameSession onto it, a generate
with --session: org.rwkvd.Error.Corrupt naming the kept file), also after a further restart, until
DeleteSession frees it. A wrong daemon.key (a backup restored with another key) makes rwkvd refuse
to start, naming the key file, and moves nothing: with the right key back every session is there."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessionstest as st  # noqa: E402
from sessionstest import rwkvtest  # noqa: E402


def listed(d):
    return sorted(s[0] for s in d.call("ListSessions")[0])


def start(bus, model, state_dir):
    """A started daemon and the log lines of this start only."""
    d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir)
    before = os.path.getsize(d.log_path) if os.path.exists(d.log_path) else 0
    d.start()
    with open(d.log_path, "rb") as f:
        f.seek(before)
        return d, f.read().decode(errors="replace")


def body():
    with rwkvtest.Bus() as bus:
        model = rwkvtest.test_model(bus.tmp)
        state_dir = os.path.join(bus.tmp, "state")
        udir = os.path.join(state_dir, str(os.geteuid()))
        d = rwkvtest.Daemon(bus, model=model, state_dir=state_dir).start()
        try:
            for sid in ("r1", "r2", "r3"):
                st.generate(bus, sid, "Hello", 4)
            export = os.path.join(bus.tmp, "r2.export")
            r = subprocess.run([st.ctl(), "--address", bus.address, "session", "export", "r2", export],
                               capture_output=True, timeout=60)
            rwkvtest.check(r.returncode == 0, "export r2: %r" % r.stderr)
            rwkvtest.check(d.stop() == 0, "exit status")

            # One truncated file: a warning, the file kept aside, its id reserved.
            os.truncate(os.path.join(udir, "r2.session"), 1000)
            d, log = start(bus, model, state_dir)
            line = [l for l in log.splitlines() if "'r2'" in l]
            rwkvtest.check(line and "r2.session.corrupt" in line[0] and "1000 bytes" in line[0]
                           and "reserved" in line[0], "no warning about r2 at startup:\n%s" % log)
            rwkvtest.check("1 unusable" in log, "the summary does not count r2:\n%s" % log)
            rwkvtest.check(os.path.exists(os.path.join(udir, "r2.session.corrupt")), "r2 not kept aside")
            rwkvtest.check(listed(d) == ["r1", "r3"], "listed: %s" % listed(d))

            def reserved():
                d.expect_error("Corrupt", "GetSession", "'r2'", contains="r2.session.corrupt")
                d.expect_error("Corrupt", "CreateSession", "'r2'", "@a{sv} {}", contains="r2.session.corrupt")
                d.expect_error("Corrupt", "RenameSession", "'r1'", "'r2'", contains="r2.session.corrupt")
                d.expect_error("Corrupt", "ForkSession", "'r1'", "'r2'", "uint32 0")
                r = subprocess.run([st.ctl(), "--address", bus.address, "generate", "--session", "r2",
                                    "--max-tokens", "2", "Hi"], capture_output=True, timeout=60)
                rwkvtest.check(r.returncode != 0 and b"r2.session.corrupt" in r.stderr,
                               "generate --session r2 over the corrupt session: %d %r" % (r.returncode, r.stderr))
                # an import that keeps the exported id (none given) learns it only from the export
                r = subprocess.run([st.ctl(), "--address", bus.address, "session", "import", export],
                                   capture_output=True, timeout=60)
                rwkvtest.check(r.returncode != 0 and b"r2.session.corrupt" in r.stderr,
                               "import of r2's export over the corrupt session: %d %r" % (r.returncode, r.stderr))
                rwkvtest.check(not os.path.exists(os.path.join(udir, "r2.session")),
                               "a fresh r2 was stored over the corrupt one")

            reserved()
            # The next start still knows the id (the file was moved aside by the previous one).
            d.stop()
            d, log = start(bus, model, state_dir)
            rwkvtest.check("r2.session.corrupt" in log, "no warning about r2 at the second start:\n%s" % log)
            reserved()
            # DeleteSession frees the id, and the copy kept aside goes with it.
            d.call("DeleteSession", "s", "r2")
            rwkvtest.check(not st.corrupt_files(state_dir), "left: %s" % st.corrupt_files(state_dir))
            st.generate(bus, "r2", "Hello again", 4)
            rwkvtest.check(listed(d) == ["r1", "r2", "r3"], "listed: %s" % listed(d))
            rwkvtest.check(d.stop() == 0, "exit status")

            # A daemon key that fits none of the sessions: refuse to start, move nothing.
            key_path = os.path.join(state_dir, "daemon.key")
            with open(key_path, "rb") as f:
                key = f.read()
            with open(key_path, "wb") as f:
                f.write(bytes(b ^ 0x5a for b in key))
            before = sorted(os.listdir(udir))
            try:
                r = subprocess.run([rwkvtest.rwkvd_path(), "--address", bus.address, "--model", model,
                                    "--state-dir", state_dir], capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError("rwkvd started with the wrong daemon key (still running after 30 s)")
            err = r.stderr.decode(errors="replace")
            rwkvtest.check(r.returncode != 0, "rwkvd started with the wrong daemon key:\n%s" % err)
            rwkvtest.check(key_path in err and "does not match the stored sessions" in err,
                           "the refusal does not name the key file:\n%s" % err)
            rwkvtest.check(sorted(os.listdir(udir)) == before and not st.corrupt_files(state_dir),
                           "files moved with the wrong key: %s -> %s" % (before, sorted(os.listdir(udir))))
            with open(key_path, "wb") as f:
                f.write(key)
            d, log = start(bus, model, state_dir)
            rwkvtest.check(listed(d) == ["r1", "r2", "r3"], "with the right key back: %s" % listed(d))
            rwkvtest.check("3 sessions on disk" in log, "log:\n%s" % log)
            st.generate(bus, "r1", "", 2)
        finally:
            d.kill()


if __name__ == "__main__":
    rwkvtest.run_test(body)
