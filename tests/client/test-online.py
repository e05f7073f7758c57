#!/usr/bin/env python3
"""rwkvctl's online verbs and librwkv-client against the real rwkvd on a private dbus-daemon:
output and exit codes, --json, pipelines, a prompt streamed through the ring with the daemon's RSS
reported, a client killed mid-stream while another continues, a slow reader beside a fast one, and
a client scribbling over its ring. One daemon serves all cases (start-up costs once).

    test-online.py SCRIBBLER SLOW_READER [PROMPT_BYTES]
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest  # noqa: E402
from rwkvtest import check  # noqa: E402

SCRIBBLER = sys.argv[1]
SLOW_READER = sys.argv[2]
PROMPT_BYTES = int(sys.argv[3]) if len(sys.argv) > 3 else 24 * 1024


def ctl_path():
    p = rwkvtest.rwkvctl_path()
    if not p:
        rwkvtest.skip("rwkvctl is not built")
    return p


class Env:
    def __init__(self, bus, daemon):
        self.bus, self.d = bus, daemon
        self.env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)
        self.ctl = ctl_path()

    def run(self, *args, input=None, timeout=120):
        return subprocess.run([self.ctl] + list(args), input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=self.env, timeout=timeout)

    def popen(self, *args, **kw):
        return subprocess.Popen([self.ctl] + list(args), env=self.env, **kw)

    def status(self):
        r = self.run("--json", "status")
        check(r.returncode == 0, "status failed: %r" % r.stderr)
        return json.loads(r.stdout)


def case_basic(e):
    st = e.status()
    for key in ("version", "model_hash", "threads", "sessions_hot", "jobs_running", "rss_bytes"):
        check(key in st, "status --json lacks %s: %r" % (key, st))
    r = e.run("status")
    check(r.returncode == 0 and b"Model:" in r.stdout, "status: %r" % r.stdout)

    r = e.run("generate", "--max-tokens", "12", "--seed", "7", "Hello")
    check(r.returncode == 0, "generate failed: %r" % r.stderr)
    check(len(r.stdout) > 0, "generate printed nothing")
    check(r.stderr == b"", "stderr is not a TTY, yet got %r" % r.stderr)

    r = e.run("--json", "generate", "--max-tokens", "5", "--temperature", "0.5", "--top-k", "20",
              "--top-p", "0.9", "Hello")
    check(r.returncode == 0, "generate --json failed: %r" % r.stderr)
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    check(lines[-1].get("end") is True, "no end object: %r" % lines)
    check(lines[-1]["tokens_generated"] == 5 and lines[-1]["stop_reason"] == "max_tokens", repr(lines[-1]))
    # One object per piece of text: a character split across tokens is one piece (so 1 to 5 here).
    pieces = [l for l in lines[:-1] if "token" in l]
    check(1 <= len(pieces) <= 5 and len(pieces) == len(lines) - 1, "expected 1-5 token objects: %r" % lines)

    # Same seed, fresh throw-away sessions: same text.
    a = e.run("generate", "--max-tokens", "16", "--seed", "42", "Once")
    b = e.run("generate", "--max-tokens", "16", "--seed", "42", "Once")
    check(a.returncode == 0 and a.stdout == b.stdout, "seeded runs differ: %r vs %r" % (a.stdout, b.stdout))

    # Pipelines: echo hi | rwkvctl generate | wc -c
    r = subprocess.run("echo hi | '%s' generate --max-tokens 8 | wc -c" % e.ctl, shell=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e.env, timeout=60)
    check(r.returncode == 0 and int(r.stdout) > 0, "pipeline: %r %r" % (r.stdout, r.stderr))

    # Errors: non-zero exit and exactly one line.
    for args in (("session", "show", "no-such-session"), ("generate", "--top-p", "7", "x"),
                 ("session", "bogus"), ("generate", "--session", "bad id!", "x")):
        r = e.run(*args)
        err = r.stderr.decode()
        check(r.returncode != 0, "%r succeeded" % (args,))
        check(err.startswith("rwkvctl: ") and err.count("\n") == 1, "%r: not one line: %r" % (args, err))

    # Sessions: --session creates, then continues.
    r = e.run("generate", "--session", "t-basic", "--max-tokens", "4", "Hi")
    check(r.returncode == 0, "generate --session: %r" % r.stderr)
    r = e.run("generate", "--session", "t-basic", "--max-tokens", "4", "")
    check(r.returncode == 0, "continue: %r" % r.stderr)
    info = json.loads(e.run("--json", "session", "show", "t-basic").stdout)
    check(info["id"] == "t-basic" and info["tokens"] >= 10, "session show: %r" % info)
    r = e.run("session", "fork", "t-basic", "t-fork")
    check(r.returncode == 0 and r.stdout.strip() == b"t-fork", "fork: %r %r" % (r.stdout, r.stderr))
    ids = [s["id"] for s in json.loads(e.run("session", "list", "--json").stdout)["sessions"]]
    check("t-basic" in ids and "t-fork" in ids, "list: %r" % ids)
    check(e.run("session", "delete", "t-fork").returncode == 0, "delete failed")
    exp = os.path.join(e.bus.tmp, "t-basic.export")
    r = e.run("session", "export", "t-basic", exp)
    if r.returncode == 0:
        r = e.run("session", "import", exp, "t-imported")
        check(r.returncode == 0 and r.stdout.strip() == b"t-imported", "import: %r %r" % (r.stdout, r.stderr))
    else:
        print("note: export not available: %s" % r.stderr.decode().strip())

    # chat: RWKV World format, stops at the blank line, several turns in one session.
    r = e.run("chat", "--session", "t-chat", "--max-tokens", "24", "--system", "Be brief.",
              input=b"hello\n\n\nthere\nsecond question\n")
    check(r.returncode == 0, "chat failed: %r" % r.stderr)
    info = json.loads(e.run("--json", "session", "show", "t-chat").stdout)
    check(info["tokens"] > 20, "chat did not reach the session: %r" % info)
    # the penalty and min-p options reach the daemon (accepted), and bad values are refused locally
    r = e.run("generate", "--max-tokens", "3", "--min-p", "0.05", "--presence-penalty", "0",
              "--frequency-penalty", "0.2", "--penalty-decay", "0.9", "Hello")
    check(r.returncode == 0, "penalty options: %r" % r.stderr)
    for bad in (("--min-p", "2"), ("--penalty-decay", "1.5"), ("--presence-penalty", "x")):
        r = e.run("generate", "--max-tokens", "3", bad[0], bad[1], "Hello")
        check(r.returncode == 2 and bad[0].encode() in r.stderr, "%s %s: %r" % (bad[0], bad[1], r.stderr))
    print("basic: ok")


def case_prompt_stream(e):
    """A prompt larger than the ring streamed through stdin; the daemon's RSS is reported."""
    before = e.d.rss_bytes()
    chunk = b"The quick brown fox jumps over the lazy dog. " * 64
    data = (chunk * (PROMPT_BYTES // len(chunk) + 1))[:PROMPT_BYTES]
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            try:
                peak[0] = max(peak[0], e.d.rss_bytes())
            except OSError:
                return

    t = threading.Thread(target=sample)
    t.start()
    t0 = time.monotonic()
    try:
        r = e.run("--json", "generate", "--max-tokens", "1", input=data, timeout=600)
    finally:
        done.set()
        t.join()
    secs = time.monotonic() - t0
    check(r.returncode == 0, "streamed generate failed: %r" % r.stderr)
    end = json.loads(r.stdout.decode().splitlines()[-1])
    check(end["prompt_tokens"] > 0, "no prompt tokens: %r" % end)
    growth = peak[0] - before
    print("prompt stream: %d bytes, %d prompt tokens in %.1f s; daemon RSS %.1f MiB before, peak %.1f MiB "
          "(+%.2f MiB)" % (len(data), end["prompt_tokens"], secs, before / 2**20, peak[0] / 2**20, growth / 2**20))
    # Flat means independent of the prompt size: allow the daemon's working set, not the prompt.
    check(growth < 8 * 2**20 + len(data) // 8,
          "daemon RSS grew by %.1f MiB for a %.1f MiB prompt" % (growth / 2**20, len(data) / 2**20))


def case_back_to_back_turns(e):
    """chat starts each turn the moment it reads the previous end record, on one connection: the
    daemon pushes the end record only after releasing the session, so no turn meets SessionBusy
    (rwkvctl no longer retries)."""
    n = 40
    lines = b"".join(b"line %d\n" % i for i in range(n))
    r = e.run("chat", "--session", "t-turns", "--max-tokens", "1", "--seed", "1", input=lines)
    check(r.returncode == 0, "back-to-back turns failed: %r" % r.stderr)
    info = json.loads(e.run("--json", "session", "show", "t-turns").stdout)
    check(info["turns"] == n, "expected %d turns: %r" % (n, info))
    e.run("session", "delete", "t-turns")
    print("back-to-back turns: ok")


def case_kill_client(e):
    """kill -9 of a client mid-stream: the other client finishes, the daemon forgets the first."""
    victim = e.popen("generate", "--max-tokens", "1000000", "Tell me a long story",
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first = victim.stdout.read(1)
    check(first, "the victim printed nothing")
    survivor = e.popen("--json", "generate", "--max-tokens", "60", "Another story",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    victim.stdout.close()
    out, err = survivor.communicate(timeout=120)
    check(survivor.returncode == 0, "survivor failed: %r" % err)
    end = json.loads(out.decode().splitlines()[-1])
    check(end["tokens_generated"] == 60, "survivor ended early: %r" % end)
    check(e.d.alive(), "the daemon died")
    deadline = time.monotonic() + 20
    while e.status()["jobs_running"] != 0:
        check(time.monotonic() < deadline, "the killed client's job is still running")
        time.sleep(0.1)
    print("kill client: ok")


def case_slow_reader(e):
    """A reader that sleeps between reads parks only its own generation."""
    def fast_run():
        """Wall time of a whole rwkvctl run, and the daemon's own decode time for it."""
        t0 = time.monotonic()
        r = e.run("--json", "generate", "--max-tokens", "300", "--seed", "3", "Fast")
        check(r.returncode == 0, "fast reader failed: %r" % r.stderr)
        end = json.loads(r.stdout.decode().splitlines()[-1])
        check(end["tokens_generated"] == 300, repr(end))
        return time.monotonic() - t0, end["generate_usec"] / 1e6

    alone = min(fast_run(), fast_run(), key=lambda x: x[1])
    slow = subprocess.Popen([SLOW_READER, e.bus.address, "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        check(slow.stdout.readline().strip() == b"started", "the slow reader did not start")
        # Wait until its ring is full and its generation parked: the daemon's token count then
        # only grows at the slow reader's pace (about 50 tokens/s).
        deadline = time.monotonic() + 60
        last = e.status()["tokens_total"]
        while True:
            time.sleep(0.5)
            now = e.status()["tokens_total"]
            if now - last < 100:
                break
            check(time.monotonic() < deadline, "the slow reader's generation never parked")
            last = now
        # The best of up to three runs: a load spike on a shared machine passes, a systematic
        # slowdown (the fast stream held to the slow one's pace) does not.
        busy = fast_run()
        for _ in range(2):
            if busy[1] < 3.0 * alone[1] + 0.5:
                break
            busy = min(busy, fast_run(), key=lambda x: x[1])
    finally:
        slow.send_signal(signal.SIGTERM)
        out, err = slow.communicate(timeout=30)
    check(slow.returncode == 0, "slow reader failed: %r" % err)
    print("slow reader: fast reader (300 tokens) took %.3f s wall / %.3f s decode alone, %.3f s / %.3f s beside "
          "a parked slow reader (%s)" % (alone[0], alone[1], busy[0], busy[1], out.decode().strip()))
    # Lock-step coupling would hold the fast stream to the slow reader's pace (50 tokens/s); a parked
    # generation should cost the batch nothing, so allow only for noise on a loaded shared machine.
    check(300 / busy[1] > 5 * 50, "the fast reader ran at the slow reader's pace: %r" % (busy,))
    check(busy[1] < 3.0 * alone[1] + 0.5 and busy[0] < 3.0 * alone[0] + 1.0,
          "the slow reader slowed the fast one: %r vs %r" % (busy, alone))


class Pty:
    """rwkvctl on a pseudo-terminal (chat's libedit path): expect() waits for text in its output."""

    def __init__(self, e, *args):
        import pty
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(e.ctl, [e.ctl] + list(args), e.env)
        self.buf = b""

    def expect(self, marker, timeout=30, eof_ok=False):
        """Waits for marker (bytes, or a tuple: the first of them to appear, which is returned).
        Returns None when the terminal closed first and eof_ok."""
        import select
        markers = marker if isinstance(marker, tuple) else (marker,)
        deadline = time.monotonic() + timeout
        while True:
            found = sorted((self.buf.find(m), m) for m in markers if self.buf.find(m) >= 0)
            if found:
                i, m = found[0]
                self.buf = self.buf[i + len(m):]
                return m
            left = deadline - time.monotonic()
            check(left > 0, "chat: no %r within %ds; last output %r" % (marker, timeout, self.buf[-300:]))
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if r:
                try:
                    data = os.read(self.fd, 1 << 16)
                except OSError:
                    data = b""
                if not data and eof_ok:
                    return None
                check(data, "chat: the terminal closed while waiting for %r; last output %r" % (marker, self.buf[-300:]))
                self.buf = (self.buf + data)[-(1 << 16):]

    def send(self, data):
        try:
            os.write(self.fd, data)
        except OSError:  # the program is gone: the caller's wait() says how it ended
            pass

    def wait(self, timeout=30, resend=None):
        """Waits for the program to exit, keeping the terminal drained. resend: bytes sent once
        more after 5 s without an exit (a key pressed while libedit switches the terminal's mode
        can be lost, as for a user, who presses it again); said on stdout when it happens."""
        import select
        start = time.monotonic()
        resent = False
        while True:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return st
            now = time.monotonic()
            check(now < start + timeout, "chat did not exit; last output %r" % self.buf[-300:])
            if resend is not None and not resent and now > start + 5:
                print("note: no exit 5 s after %r: sent again" % resend)
                self.send(resend)
                resent = True
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                try:  # never blocks: select said there is data (or the end)
                    self.buf = (self.buf + os.read(self.fd, 1 << 16))[-(1 << 16):]
                except OSError:
                    time.sleep(0.05)

    def cooked(self):
        import termios
        lflag = termios.tcgetattr(self.fd)[3]
        return bool(lflag & termios.ICANON) and bool(lflag & termios.ECHO)

    def wait_raw(self, timeout=10):
        """Waits until the line editor has put the terminal in its own mode: a key sent before
        that may be dropped by its mode switch (as for a user, who would press it again)."""
        end = time.monotonic() + timeout
        while self.cooked() and time.monotonic() < end:
            time.sleep(0.01)

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def case_chat_tty(e):
    """chat on a terminal: Ctrl-C stops a reply and the chat goes on; Ctrl-C at the prompt ends it
    with the terminal back in cooked mode (it was left raw, without echo); Ctrl-D ends it with 0."""
    # The random test model rarely writes the blank line that ends a reply, but it may: then the
    # Ctrl-C meant for the reply meets the prompt (or is spent between the two), and the case runs
    # again.
    stopped = False
    for attempt in range(5):
        t = Pty(e, "chat", "--session", "t-tty", "--max-tokens", "1000000")
        try:
            t.expect(b"User: ")
            t.send(b"Tell me everything\r")
            t.expect(b"Assistant:")
            t.send(b"\x03")
            got = t.expect((b"[stopped]", b"User: "), eof_ok=True)
            stopped = got == b"[stopped]"
            if stopped:
                t.expect(b"User: ")
            if got is not None:
                t.send(b"\x03")
            st = t.wait(resend=b"\x03" if got is not None else None)
            check(os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGINT, "Ctrl-C at the prompt: status %r" % st)
            check(t.cooked(), "Ctrl-C at the prompt left the terminal in raw mode")
        finally:
            t.close()
        if stopped:
            break
    check(stopped, "no reply lasted long enough for a Ctrl-C in 5 tries")
    t = Pty(e, "chat", "--session", "t-tty")
    try:
        t.expect(b"Resuming session 't-tty'")
        t.expect(b"User: ")
        t.wait_raw()
        t.send(b"\x04")
        st = t.wait()
        check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0 and t.cooked(), "Ctrl-D: status %r" % st)
    finally:
        t.close()
    print("chat on a terminal: ok")


def case_interrupt(e):
    """Ctrl-C cancels the generation (end record "cancelled", exit 130); the session stays usable."""
    p = e.popen("--json", "generate", "--session", "t-int", "--max-tokens", "1000000", "hi",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(p.stdout.readline(), "no output before the interrupt")
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    check(p.returncode == 130, "exit status %r after SIGINT: %r" % (p.returncode, err))
    end = json.loads(out.decode().splitlines()[-1])
    check(end.get("stop_reason") == "cancelled", "not cancelled: %r" % end)
    r = e.run("generate", "--session", "t-int", "--max-tokens", "3", "more")
    check(r.returncode == 0, "the interrupted session is unusable: %r" % r.stderr)
    print("interrupt: ok")


def case_daemon_gone(e):
    """A daemon that dies mid-stream ends the client with one line, at once."""
    p = e.popen("generate", "--max-tokens", "1000000", "hi", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(p.stdout.read(1), "no output")
    e.d.kill()
    out, err = p.communicate(timeout=30)
    check(p.returncode == 1 and err.decode().count("\n") == 1, "client after daemon death: %r %r"
          % (p.returncode, err))
    # With no daemon at all: one line that says so (the bus's own words only name the service).
    for args in (("status",), ("generate", "hi"), ("session", "list")):
        r = e.run(*args)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 1 and err.count("\n") == 1 and err.startswith("rwkvctl: ")
              and "rwkvd is not running on the given bus" in err, "%s without a daemon: %r" % (args[0], err))
    print("daemon gone: ok")


def case_scribbler(e):
    for mode in ("indices", "random"):
        r = subprocess.run([SCRIBBLER, e.bus.address, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        check(r.returncode == 0, "scribbler %s: %r" % (mode, r.stderr))
        check(b"error=%d" % 74 in r.stdout, "expected EBADMSG (74): %r" % r.stdout)  # EBADMSG
        check(e.d.alive(), "the daemon died after a scribbled ring")
        r = e.run("generate", "--max-tokens", "5", "still there?")
        check(r.returncode == 0, "the daemon stopped serving after %s: %r" % (mode, r.stderr))
    print("scribbler: ok")


def main():
    with rwkvtest.Bus() as bus:
        model = rwkvtest.test_model(bus.tmp, layers=1, embd=64)
        # Long generations (the kill, slow-reader and scribbler cases) need more than the default cap.
        config = {"limits": {"max_tokens_per_request": 1000000}}
        with rwkvtest.Daemon(bus, model=model, threads=1, config=config) as d:
            e = Env(bus, d)
            which = os.environ.get("RWKV_ONLINE_CASES", "basic,stream,turns,kill,slow,interrupt,tty,scribble,gone").split(",")
            if "basic" in which:
                case_basic(e)
            if "stream" in which:
                case_prompt_stream(e)
            if "turns" in which:
                case_back_to_back_turns(e)
            if "kill" in which:
                case_kill_client(e)
            if "slow" in which:
                case_slow_reader(e)
            if "interrupt" in which:
                case_interrupt(e)
            if "tty" in which:
                case_chat_tty(e)
            if "scribble" in which:
                case_scribbler(e)
            check(d.alive(), "the daemon died")
            if "gone" in which:
                case_daemon_gone(e)


if __name__ == "__main__":
    rwkvtest.run_test(main)
