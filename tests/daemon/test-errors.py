#!/usr/bin/env python3
"""Named errors end to end that need a daemon in a particular state: a state directory that cannot
take a commit, and a daemon in the middle of shutting down.

    test-errors.py [full-disk | shutdown | stale-export]   (default: full-disk and shutdown)

full-disk: rwkvd's state directory is a 2 MiB tmpfs in a private mount namespace (root: unshare -m,
    the daemon and the helpers enter it with nsenter), filled up after a first commit. A write into
    the state directory (ImportSession) is org.rwkvd.Error.NoSpace with a human message, an export
    to a full destination too; generations go on in RAM (the failed commits are logged), the daemon
    keeps serving, and after a restart with room again the session is the version last committed,
    sessions never committed are gone, and commits work again. Without root the directory is made
    read-only instead (chmod), and the write error is org.rwkvd.Error.IO ("Permission denied").
shutdown: a call that arrives while rwkvd shuts down is org.rwkvd.Error.ShuttingDown. The window is
    made wide and certain: a job is inside one 4000-token prefill chunk (about 1.5 s on the model
    used) when SIGTERM comes, and the calls are made after the daemon's STOPPING=1 notification.
stale-export: ExportSession of a session whose last commit failed hands out the session as RAM
    holds it (an export is how its owner takes it away from a full disk), not the older committed
    version as if it were the session.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402
from rwkvtest import check  # noqa: E402


def client_path():
    return os.path.join(rt.build_root(), "tests", "daemon", "rwkv-test-client")


class FullableStateDir:
    """A state directory that fill() makes unable to take a write and free() gives room again."""

    def __init__(self, bus):
        self.path = os.path.join(bus.tmp, "state")
        os.makedirs(self.path)
        self.holder = None
        self.wrap = ()
        self.why = ""
        if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("nsenter"):
            self.holder = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'mount -t tmpfs -o size=2m,mode=0755 tmpfs "$1" && echo mounted && exec sleep 3600', "sh", self.path],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            line = self.holder.stdout.readline()
            if line.strip() != b"mounted":
                err = self.holder.stderr.read().decode(errors="replace") if self.holder.wait(5) is not None else ""
                self.why = "no tmpfs in a private mount namespace (%s)" % err.strip()
                self.holder = None
            else:
                self.wrap = ("nsenter", "-t", str(self.holder.pid), "-m", "--")
        elif os.geteuid() == 0:
            self.why = "unshare or nsenter is missing"
        # Root writes into a read-only directory anyway: without the tmpfs, root cannot run this.
        self.usable = self.holder is not None or os.geteuid() != 0
        self.expected = "NoSpace" if self.holder else "IO"

    def sh(self, script):
        r = subprocess.run(list(self.wrap) + ["sh", "-c", script, "sh", self.path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    def fill(self):
        if self.holder:
            self.sh('dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null')
            rc, out = self.sh('df -k "$1" | tail -n 1')
            check(out.split()[3] == "0", "the tmpfs still has room: %s" % out)
        else:
            for d, _, _ in os.walk(self.path):
                os.chmod(d, 0o555)

    def free(self):
        if self.holder:
            rc, out = self.sh('rm "$1/filler"')
            check(rc == 0, "rm filler: %s" % out)
        else:
            for d, _, _ in os.walk(self.path):
                os.chmod(d, 0o755)

    def close(self):
        if self.holder:
            self.holder.kill()
            self.holder.wait()


def transfer(bus, verb, sid, path):
    """export/import through rwkv-test-client: (ok, stdout or "Name: message")."""
    r = subprocess.run([client_path(), bus.address, verb, sid, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    return r.returncode == 0, (r.stdout if r.returncode == 0 else r.stderr).decode(errors="replace").strip()


def expect_transfer_error(bus, verb, sid, path, name, contains):
    ok, out = transfer(bus, verb, sid, path)
    check(not ok, "%s %s %s succeeded: %s" % (verb, sid, path, out))
    full = "org.rwkvd.Error." + name
    check(out.startswith(full + ": ") and len(out) > len(full) + 10, "%s %s: expected %s, got %r" % (verb, sid, full, out))
    check(contains in out, "%s %s: %r lacks %r" % (verb, sid, out, contains))
    print("%s %s -> %s" % (verb, os.path.basename(path), out))
    return out


def generate(bus, sid, prompt, max_tokens=4):
    env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)
    r = subprocess.run([rt.rwkvctl_path(), "--json", "generate", "--session", sid, "--max-tokens", str(max_tokens),
                        "--temperature", "0", prompt], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
    check(r.returncode == 0, "generate in %r: exit %d: %s" % (sid, r.returncode, r.stderr.decode(errors="replace")))
    return json.loads(r.stdout.decode().splitlines()[-1])


def tokens(d, sid):
    return d.call("GetSession", "s", sid)[0]["tokens"]["data"]


def listed(d):
    return {row[0]: row for row in d.call("ListSessions")[0]}


def committed_session(bus, d, sid):
    """A session with one turn whose commit has landed: ExportSession commits first and reads the
    committed file, in order on the I/O thread, so its return means the commit is on disk."""
    d.call("CreateSession", "sa{sv}", sid, 0)
    generate(bus, sid, "Hello")
    exp = os.path.join(bus.tmp, sid + ".export")
    ok, out = transfer(bus, "export", sid, exp)
    check(ok, "export of %r: %s" % (sid, out))
    return tokens(d, sid), exp


def test_full_disk():
    if not rt.rwkvctl_path():
        rt.skip("rwkvctl is not built")
    with rt.Bus() as bus:
        model = rt.test_model(bus.tmp)
        st = FullableStateDir(bus)
        if not st.usable:
            print("note: the full state directory case is skipped: %s" % st.why)
            return
        d = None
        try:
            d = rt.Daemon(bus, model=model, state_dir=st.path, wrap=st.wrap, name="full1").start()
            t1, exp = committed_session(bus, d, "keep")
            st.fill()
            # A generation still runs (in RAM); its commit fails: the client is told by the stream's
            # error record, and the commit is logged, to be tried again later.
            why = "No space left on device" if st.holder else "Permission denied"
            generate_unsaved(bus, "keep", " again", why)
            t2 = tokens(d, "keep")
            check(t2 > t1, "the session did not grow in RAM: %d -> %d" % (t1, t2))
            # A fork (its commit fails) renamed at once: the rename is queued behind that commit, and
            # the failed commit must still find the session under its new name and keep it unsaved.
            r = subprocess.run([client_path(), bus.address, "fork-rename", "keep", "forked", "renamed"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            check(r.returncode == 0, "fork-rename: %s" % r.stderr.decode(errors="replace"))
            rows = listed(d)
            check("renamed" in rows and "forked" not in rows, "after fork + rename: %s" % rows)
            # Writes into the state directory are refused with a named error and a human message.
            msg = expect_transfer_error(bus, "import", "copy", exp, st.expected,
                                        "No space left on device" if st.holder else "Permission denied")
            check("Importing the session failed" in msg, "the message does not say what failed: %r" % msg)
            # A destination that is full: NoSpace as well (the client's file, not the state directory).
            expect_transfer_error(bus, "export", "keep", "/dev/full", "NoSpace", "No space left on device")
            # The daemon keeps serving: status, new sessions, generations.
            check(d.call("Status")[0]["sessions_hot"]["data"] >= 1, "Status")
            d.call("CreateSession", "sa{sv}", "other", 0)
            generate_unsaved(bus, "other", "Hi", why)
            check("copy" not in listed(d), "a failed import left a session: %s" % listed(d))
            check(d.alive(), "rwkvd died on a full state directory:\n%s" % d.log())
            rc = d.stop(signal.SIGTERM, timeout=30)
            log = d.log()
            print("rwkvd exit status after SIGTERM with commits failing: %s" % rc)
            check(rc == 1, "exit status %s (expected 1: sessions could not be saved):\n%s" % (rc, log))
            check("Failed to save session 'keep'" in log, "the failed commit is not logged:\n%s" % log)
            for sid in ("keep", "other", "renamed"):
                check("Session '%s' of uid %d could not be saved" % (sid, os.geteuid()) in log,
                      "the unsaved session %r is not named at exit:\n%s" % (sid, log))

            # Room again: the last committed version is intact, sessions never committed are gone,
            # and commits land again.
            st.free()
            d = rt.Daemon(bus, model=model, state_dir=st.path, wrap=st.wrap, name="full2").start()
            rows = listed(d)
            check("keep" in rows and rows["keep"][2] == t1 and rows["keep"][3] == 1,
                  "after the restart: %s (last committed: %d tokens, 1 turn)" % (rows, t1))
            check(not {"other", "copy", "forked", "renamed"} & set(rows), "sessions never committed came back: %s" % rows)
            end = generate(bus, "keep", " more")
            check(end["session_tokens"] == tokens(d, "keep") > t1, "generate after the restart: %s" % end)
            ok, out = transfer(bus, "export", "keep", exp + ".2")
            check(ok, "export after the restart: %s" % out)
            ok, out = transfer(bus, "import", "copy", exp + ".2")
            check(ok and tokens(d, "copy") == tokens(d, "keep"), "import after the restart: %s" % out)
            check(d.stop() == 0, "exit status")
        finally:
            if d:
                d.kill()
            st.close()


def test_stale_export():
    """An export after a failed commit is the session as it is in RAM (the daemon used to hand out
    the older committed version, and succeed)."""
    if not rt.rwkvctl_path():
        rt.skip("rwkvctl is not built")
    with rt.Bus() as bus:
        model = rt.test_model(bus.tmp)
        st = FullableStateDir(bus)
        if not st.usable:
            rt.skip("no state directory that can be made full: %s" % st.why)
        d = None
        try:
            d = rt.Daemon(bus, model=model, state_dir=st.path, wrap=st.wrap, name="stale").start()
            t1, _ = committed_session(bus, d, "keep")
            st.fill()
            generate_unsaved(bus, "keep", " again", "No space left on device" if st.holder else "Permission denied")
            t2 = tokens(d, "keep")
            exp = os.path.join(bus.tmp, "after-failed-commit.export")
            ok, out = transfer(bus, "export", "keep", exp)
            check(ok, "export after a failed commit: %s" % out)
            st.free()
            ok, out = transfer(bus, "import", "exported", exp)
            check(ok, "import: %s" % out)
            got = tokens(d, "exported")
            print("session in RAM: %d tokens (last commit: %d); the export succeeded with %d tokens" % (t2, t1, got))
            check(got == t2, "ExportSession after a failed commit returned the committed version (%d tokens) "
                  "instead of the session (%d tokens) or an error" % (got, t2))
            # The session stayed dirty: with room again, shutdown saves it (exit 0), and it comes back.
            check(d.stop() == 0, "exit status after SIGTERM with room again:\n%s" % d.log())
            d = rt.Daemon(bus, model=model, state_dir=st.path, wrap=st.wrap, name="stale2").start()
            check(tokens(d, "keep") == t2, "after the restart: %d tokens, RAM held %d" % (tokens(d, "keep"), t2))
            print("saved at shutdown once there was room: %d tokens after the restart" % t2)
            check(d.stop() == 0, "exit status")
        finally:
            if d:
                d.kill()
            st.close()


def test_shutdown():
    ctl = rt.rwkvctl_path()
    if not ctl:
        rt.skip("rwkvctl is not built")
    with rt.Bus() as bus:
        model = os.path.join(bus.tmp, "wide.rwkv")
        r = subprocess.run([ctl, "model", "random", "--layers", "2", "--embd", "512", "--vocab", "256", "--type", "f16",
                            model], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == 0, "model random: %s" % r.stderr)
        state = os.path.join(bus.tmp, "shutdown-state")
        cfg = {"scheduler": {"prefill_chunk": 4096}}
        d = rt.Daemon(bus, model=model, state_dir=state, config=cfg, keep_notify=True, name="shutdown").start()
        d.call("CreateSession", "sa{sv}", "s", 0)
        env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)
        g = subprocess.Popen([ctl, "--json", "generate", "--session", "s", "--max-tokens", "5", "x" * 4000],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            t0 = time.monotonic()
            while d.call("Status")[0]["jobs_running"]["data"] == 0:
                check(time.monotonic() - t0 < 30 and g.poll() is None, "the generation did not start")
                time.sleep(0.005)
            d.proc.send_signal(signal.SIGTERM)
            d.wait_notify("STOPPING=1")
            for method, args in (("CreateSession", ("'late'", "{}")), ("Generate", ("'s'", "'x'", "{}")),
                                 ("ForkSession", ("'s'", "'f'", "uint32 0"))):
                msg = d.expect_error("ShuttingDown", method, *args)
                print("%.3f s after the job started: %s -> ShuttingDown: %s" % (time.monotonic() - t0, method, msg))
            check(d.alive(), "rwkvd exited before the calls were answered: the window was not there")
            rc = d.proc.wait(60)
            print("rwkvd exited %.2f s after the job started, status %d" % (time.monotonic() - t0, rc))
            check(rc == 0, "exit status %d:\n%s" % (rc, d.log()))
            out, err = g.communicate(timeout=60)
        finally:
            if g.poll() is None:
                g.kill()
                g.wait()
            d.kill()
        # the daemon cancelled it (shutdown): rwkvctl says so and exits 1 (rwkvctl(1), EXIT STATUS)
        check(g.returncode == 1 and b"the daemon cancelled the generation" in err,
              "generate: exit %d: %s" % (g.returncode, err))
        end = json.loads(out.decode().splitlines()[-1])
        check(end["stop_reason"] == "cancelled" and end["prompt_tokens"] == 4000, "the interrupted job's end: %s" % end)
        # What the job reached was committed on the way out.
        with rt.Daemon(bus, model=model, state_dir=state, name="shutdown2") as d2:
            check(tokens(d2, "s") == end["session_tokens"], "after the restart: %d tokens, the end record said %d"
                  % (tokens(d2, "s"), end["session_tokens"]))
            check("late" not in listed(d2) and "f" not in listed(d2), "a refused call left a session")


def generate_unsaved(bus, sid, prompt, why, max_tokens=4):
    """A generation whose text came but whose commit failed: rwkvctl gets the error record that says
    so (the session is kept in RAM), exits non-zero, and has printed the text."""
    env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)
    r = subprocess.run([rt.rwkvctl_path(), "generate", "--session", sid, "--max-tokens", str(max_tokens),
                        "--temperature", "0", prompt], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
    err = r.stderr.decode(errors="replace")
    check(r.returncode != 0, "generate in %r succeeded although its commit failed: %r" % (sid, err))
    check("could not be saved" in err and why in err, "generate in %r: the error does not say the turn was not "
          "saved (%s): %r" % (sid, why, err))
    print("generate with a failing commit -> exit %d: %s" % (r.returncode, err.strip()))
    return r.stdout


def unprivileged_wrap():
    """(wrap, uid): rwkvd as nobody when we are root (the notify socket opened to it first), else as
    ourselves."""
    if os.geteuid() != 0:
        return (), os.geteuid()
    rt.need_tool("setpriv")
    return ("sh", "-c", '[ -z "$NOTIFY_SOCKET" ] || chmod 666 "$NOTIFY_SOCKET"; exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"',
            "sh"), 65534


def user_daemon(bus, model, name, env, wrap):
    """rwkvd in user mode (--address as a non-root uid) with its default state directory and config."""
    d = rt.Daemon(bus, model=model, name=name, env=env, wrap=wrap)
    i = d.args.index("--state-dir")
    del d.args[i:i + 2]
    for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        if k not in env:
            d.env.pop(k, None)
    return d


def test_fresh_user():
    """rwkvd --user on a fresh account: no ~/.local/state yet (created, 0700 each), and a HOME it
    cannot read (the default config is skipped with a warning; an explicit --config stays fatal)."""
    if not rt.rwkvctl_path():
        rt.skip("rwkvctl is not built")
    with rt.Bus() as bus:
        model = rt.test_model(bus.tmp)
        os.chmod(model, 0o644)
        wrap, uid = unprivileged_wrap()
        base = os.path.join(bus.tmp, "accounts")
        os.makedirs(os.path.join(base, "home"))
        for dirpath in (base, os.path.join(base, "home")):
            os.chown(dirpath, uid, -1)
        home = os.path.join(base, "home")

        with user_daemon(bus, model, "fresh", {"HOME": home}, wrap) as d:
            for sub in (".local", ".local/state", ".local/state/rwkvd"):
                st = os.stat(os.path.join(home, sub))
                check(st.st_uid == uid and (st.st_mode & 0o777) == 0o700,
                      "%s: uid %d mode %o (expected uid %d, 0700)" % (sub, st.st_uid, st.st_mode & 0o777, uid))
            print("fresh HOME: .local, .local/state and .local/state/rwkvd created 0700")
            check(d.stop() == 0, "exit status:\n%s" % d.log())

        # A HOME that uid cannot read: /root for nobody, a mode-000 folder otherwise.
        locked = "/root" if os.geteuid() == 0 else os.path.join(base, "locked")
        if os.geteuid() != 0:
            os.makedirs(locked)
            os.chmod(locked, 0)
        state = os.path.join(base, "xdg", "state")
        with user_daemon(bus, model, "lockedhome", {"HOME": locked, "XDG_STATE_HOME": state}, wrap) as d:
            log = d.log()
            check("Cannot read the default config file" in log and "using the defaults" in log,
                  "no warning about the unreadable default config:\n%s" % log)
            check(os.path.isdir(os.path.join(state, "rwkvd")), "the state directory under XDG_STATE_HOME is missing")
            print("unreadable default config: %s" % [l for l in log.splitlines() if "default config" in l][0])
            check(d.stop() == 0, "exit status:\n%s" % d.log())

        # The same path given with --config: fatal.
        d = user_daemon(bus, model, "explicit", {"HOME": locked, "XDG_STATE_HOME": state}, wrap)
        cmd = d.args + ["--config", os.path.join(locked, "rwkvd.conf")]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=d.env, timeout=60)
        out = r.stdout.decode(errors="replace")
        check(r.returncode != 0 and "Permission denied" in out, "explicit unreadable --config: exit %d: %s"
              % (r.returncode, out))
        print("explicit unreadable --config -> exit %d" % r.returncode)
        if os.geteuid() != 0:
            os.chmod(locked, 0o700)


def test_fsize():
    """A file size limit (RLIMIT_FSIZE) below a session file: commits fail with EFBIG, which is
    NoSpace; rwkvd ignores SIGXFSZ and keeps serving (it was killed by it). The limit must stay above
    a token ring (a memfd: 4 KiB + 2 * 128 KiB), so the model's state is made larger than that."""
    ctl = rt.rwkvctl_path()
    if not ctl:
        rt.skip("rwkvctl is not built")
    rt.need_tool("prlimit")
    with rt.Bus() as bus:
        # L2 C1024: 540 KiB of fp32 state, which does not compress (random weights, a few tokens).
        model = os.path.join(bus.tmp, "state540k.rwkv")
        r = subprocess.run([ctl, "model", "random", "--layers", "2", "--embd", "1024", "--vocab", "256", "--type",
                            "f16", model], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == 0, "model random: %s" % r.stderr)
        state = os.path.join(bus.tmp, "fsize-state")
        with rt.Daemon(bus, model=model, state_dir=state, wrap=("prlimit", "--fsize=300000", "--"),
                       name="fsize") as d:
            d.call("CreateSession", "sa{sv}", "s", 0)
            generate_unsaved(bus, "s", "Hello", "File too large")
            check(d.alive(), "rwkvd died at its first commit:\n%s" % d.log())
            exp = os.path.join(bus.tmp, "fsize.export")
            expect_transfer_error(bus, "export", "s", exp, "NoSpace", "File too large")
            check(d.call("Status")[0]["sessions_hot"]["data"] >= 1, "Status")
            check(tokens(d, "s") > 0, "the session is gone from RAM")
            # rwkvctl chat reports each unsaved turn on stderr and goes on with the conversation
            # (the session is in RAM); its exit status says that something failed.
            before = tokens(d, "s")
            r = subprocess.run([ctl, "chat", "--session", "s", "--max-tokens", "3"], input=b"one\ntwo\n",
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                               env=dict(os.environ, RWKVD_BUS_ADDRESS=bus.address))
            err = r.stderr.decode(errors="replace")
            print("chat with unsaved turns: exit %d, stderr %r" % (r.returncode, err))
            check(r.returncode == 1 and err.count("could not be saved") == 2,
                  "chat: exit %d, stderr %r" % (r.returncode, err))
            check(tokens(d, "s") > before, "the chat's turns are not in the session")
            check(d.alive(), "rwkvd died:\n%s" % d.log())
            rc = d.stop(signal.SIGTERM, timeout=30)
            log = d.log()
            print("rwkvd exit status after SIGTERM with session 's' unsaved: %s" % rc)
            check(rc == 1, "exit status %s (expected 1: a session could not be saved):\n%s" % (rc, log))
            check("'s'" in log and "could not be saved" in log, "the unsaved session is not named:\n%s" % log)


def test_cancel_full():
    """Cancel meets a full ring while the client still reads: the client gets the end record, marked
    cancelled (the daemon used to end such a stream without one), and the session is committed."""
    with rt.Bus() as bus:
        with rt.Daemon(bus, config={"limits": {"max_tokens_per_request": 100000}}, name="cancelfull") as d:
            d.call("CreateSession", "sa{sv}", "c", 0)
            r = subprocess.run([client_path(), bus.address, "cancel-full", "c", "100000"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=90)
            out, err = r.stdout.decode().strip(), r.stderr.decode(errors="replace").strip()
            print("cancel on a full ring: exit %d: %s %s" % (r.returncode, out, err))
            check(r.returncode == 0 and out.startswith("end cancelled "),
                  "no end record after the cancel: %s %s" % (out, err))
            check(int(out.split()[3]) == tokens(d, "c"), "the end record and the session disagree: %s, %d tokens"
                  % (out, tokens(d, "c")))
            check(d.call("Status")[0]["jobs_running"]["data"] == 0, "the job is still running")
            check(d.stop() == 0, "exit status:\n%s" % d.log())


def test_bus_lost():
    """The bus goes away (dbus-daemon killed): rwkvd saves its sessions and exits 1 instead of staying
    behind without a bus, serving no one (it did)."""
    with rt.Bus() as bus:
        state = os.path.join(bus.tmp, "buslost-state")
        with rt.Daemon(bus, state_dir=state, name="buslost") as d:
            d.call("CreateSession", "sa{sv}", "b", 0)
            r = subprocess.run([client_path(), bus.address, "run", "b", "Hello", "4"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            check(r.returncode == 0, "run: %s" % r.stderr)
            want = tokens(d, "b")
            bus.stop()
            try:
                rc = d.proc.wait(15)
            except subprocess.TimeoutExpired:
                rt.fail("rwkvd is still running 15 s after its bus went away:\n%s" % d.log())
            log = d.log()
            print("rwkvd exit status after losing its bus: %d" % rc)
            check(rc == 1 and "Lost the connection to the bus" in log, "exit status %d:\n%s" % (rc, log))
            d.proc = None
        bus.start()
        with rt.Daemon(bus, state_dir=state, name="buslost2") as d:
            check(tokens(d, "b") == want, "after the restart: %d tokens, %d before" % (tokens(d, "b"), want))


def main():
    modes = sys.argv[1:] or ["full-disk", "shutdown"]
    tests = {"full-disk": test_full_disk, "shutdown": test_shutdown, "stale-export": test_stale_export,
             "fsize": test_fsize, "fresh-user": test_fresh_user, "cancel-full": test_cancel_full,
             "bus-lost": test_bus_lost}
    for mode in modes:
        tests[mode]()


if __name__ == "__main__":
    rt.run_test(main)
