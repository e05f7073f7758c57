#!/usr/bin/env python3
"""test-export: `rwkvctl session export ID FILE` never destroys what FILE was when the export fails
(no such session, a busy session): a regular file keeps its bytes and mode, a device node or FIFO
stays, and no temporary file is left beside it. On success a regular FILE is replaced whole, mode
0600 (not the old file's mode), through a symbolic link the link stays; a device, a FIFO and "-"
are written in place."""

import os
import signal
import stat
import subprocess
import threading

import clitest
import rwkvtest
from rwkvtest import check


def listing(d):
    return sorted(os.listdir(d))


def main():
    with rwkvtest.Bus() as bus:
        config = {"limits": {"max_tokens_per_request": 1000000}}
        with rwkvtest.Daemon(bus, threads=1, config=config):
            c = clitest.Ctl(bus.address)
            c.ok("generate", "--session", "keep", "--max-tokens", "3", "--seed", "1", "Hello")
            d = os.path.join(bus.tmp, "out")
            os.mkdir(d)

            # A regular file: untouched by a failed export, bytes and mode.
            backup = os.path.join(d, "backup.exp")
            with open(backup, "wb") as f:
                f.write(b"precious backup\n")
            os.chmod(backup, 0o644)
            before = listing(d)
            c.error("session", "export", "no-such-session", backup, status=1, contains="no-such-session")
            check(open(backup, "rb").read() == b"precious backup\n", "a failed export changed the file")
            check(stat.S_IMODE(os.stat(backup).st_mode) == 0o644, "a failed export changed the mode")
            check(listing(d) == before, "a failed export left files: %r" % listing(d))

            # A busy session: refused by the daemon, the file stays.
            gen = c.popen("generate", "--session", "busy", "--max-tokens", "1000000", "hi",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                check(gen.stdout.read(1), "the busy session's generation printed nothing")
                c.error("session", "export", "busy", backup, status=1, contains="busy")
                check(open(backup, "rb").read() == b"precious backup\n", "export of a busy session changed the file")
                check(listing(d) == before, "export of a busy session left files: %r" % listing(d))
            finally:
                gen.send_signal(signal.SIGINT)
                gen.communicate(timeout=60)

            # Success: replaced whole, 0600, nothing else in the folder; the export imports.
            c.ok("session", "export", "keep", backup)
            data = open(backup, "rb").read()
            check(len(data) > 64 and data != b"precious backup\n", "the export was not written")
            check(stat.S_IMODE(os.stat(backup).st_mode) == 0o600,
                  "export kept mode %o, expected 0600" % stat.S_IMODE(os.stat(backup).st_mode))
            check(listing(d) == before, "export left files: %r" % listing(d))
            out = c.ok("session", "import", backup, "imported")
            check(out.strip() == b"imported", "import: %r" % out)
            # A new file, then one through a symbolic link (the link stays a link).
            fresh = os.path.join(d, "fresh.exp")
            c.ok("session", "export", "keep", fresh)
            check(stat.S_IMODE(os.stat(fresh).st_mode) == 0o600 and os.path.getsize(fresh) == len(data),
                  "new file: %o, %d bytes" % (os.stat(fresh).st_mode, os.path.getsize(fresh)))
            link = os.path.join(d, "link.exp")
            os.symlink("fresh.exp", link)
            with open(fresh, "wb") as f:
                f.write(b"old")
            c.ok("session", "export", "keep", link)
            check(os.path.islink(link) and os.path.getsize(fresh) == len(data), "export through a link")
            os.unlink(link)
            os.unlink(fresh)

            # "-": standard output.
            out = c.ok("session", "export", "keep", "-")
            check(len(out) == len(data), "export to stdout: %d bytes, the file %d" % (len(out), len(data)))

            # A FIFO: failures leave it, a success is read from it.
            fifo = os.path.join(d, "fifo")
            os.mkfifo(fifo)
            got = []

            def reader():
                with open(fifo, "rb") as f:
                    got.append(f.read())

            for sid, status in (("no-such-session", 1), ("keep", 0)):
                t = threading.Thread(target=reader)
                t.start()
                r = c.run("session", "export", sid, fifo)
                t.join(30)
                check(r.returncode == status, "export %s to a FIFO: %d %r" % (sid, r.returncode, r.stderr))
                check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "export %s removed the FIFO" % sid)
            check(len(got) == 2 and got[0] == b"" and len(got[1]) == len(data), "read from the FIFO: %r"
                  % [len(g) for g in got])
            os.unlink(fifo)

            # Device nodes (only root may make them): a copy of /dev/null, never /dev/null itself.
            if os.geteuid() == 0:
                null = os.path.join(d, "devnull")
                os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
                c.error("session", "export", "no-such-session", null, status=1)
                check(os.path.exists(null) and stat.S_ISCHR(os.lstat(null).st_mode), "a failed export removed a device")
                c.ok("session", "export", "keep", null)
                st = os.lstat(null)
                check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), "export replaced the device")
                os.unlink(null)
            else:
                print("note: not root, no device node test")
            check(listing(d) == ["backup.exp"], "files left: %r" % listing(d))
    print("ok")


if __name__ == "__main__":
    rwkvtest.run_test(main)
