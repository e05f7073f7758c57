"""rwkvtest: the shared integration-test fixture for rwkvd (Python 3 standard library only).

A test creates a Bus (a private dbus-daemon in a temporary folder, configured by tests/lib/bus.conf),
starts the real rwkvd from the build tree on it with Daemon(...), and drives it with busctl (calls and
properties, JSON output) or gdbus (when the test needs the D-Bus error *name*: busctl prints only the
message). Clients can run as another uid (nobody, 65534) through setpriv when the test runs as root.

    with rwkvtest.Bus() as bus, rwkvtest.Daemon(bus, model=rwkvtest.test_model(bus.tmp)) as d:
        sid = d.call("CreateSession", "sa{sv}", "chat", 0)[0]
        d.expect_error("NoSuchSession", "GetSession", "'nope'")

Exit status 77 (skip()) tells meson the test was skipped; logs of the daemon and the bus are kept in
the temporary folder and printed when a test fails (Bus.__exit__ with an exception, or dump_logs()).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NAME = "org.rwkvd.Daemon1"
PATH = "/org/rwkvd/Daemon1"
IFACE = "org.rwkvd.Daemon1"
NOBODY = 65534
SKIP = 77


def skip(msg):
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(SKIP)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def build_root():
    d = os.environ.get("RWKV_BUILD_ROOT")
    if not d:
        skip("RWKV_BUILD_ROOT is not set (run through meson test)")
    return d


def source_root():
    return os.environ.get("RWKV_SOURCE_ROOT") or os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def reference_dir():
    d = os.environ.get("RWKV_REFERENCE_DIR", "")
    if not d or not os.path.exists(os.path.join(d, "README.md")):
        return None
    return d


def rwkvd_path():
    p = os.path.join(build_root(), "daemon", "rwkvd")
    if not os.access(p, os.X_OK):
        skip("rwkvd is not built at %s (the engine it needs may not have landed yet)" % p)
    return p


def rwkvctl_path():
    p = os.path.join(build_root(), "tools", "rwkvctl", "rwkvctl")
    return p if os.access(p, os.X_OK) else None


def need_rwkvctl():
    """rwkvctl's path; skips the test when it is not built."""
    p = rwkvctl_path()
    if not p:
        skip("rwkvctl is not built")
    return p


def default_model():
    """The embedded default model (models/default.rwkv: byte-level, trained, so its text is real)."""
    p = os.path.join(source_root(), "models", "default.rwkv")
    check(os.path.exists(p), "no %s" % p)
    return p


def need_tool(name):
    p = shutil.which(name)
    if not p:
        skip("%s is not installed" % name)
    return p


def test_model(tmp, layers=2, embd=64, vocab=256, seed=1):
    """A small model file: made with `rwkvctl model random` when that verb works, else the reference
    tiny RWKV-7 model; skips the test when neither is available."""
    ctl = rwkvctl_path()
    if ctl:
        out = os.path.join(tmp, "random-v7-L%d-C%d-V%d.rwkv" % (layers, embd, vocab))
        if os.path.exists(out):
            return out
        r = subprocess.run([ctl, "model", "random", "--version", "7", "--layers", str(layers),
                            "--embd", str(embd), "--vocab", str(vocab), "--seed", str(seed), out],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        if r.returncode == 0 and os.path.exists(out):
            return out
    ref = reference_dir()
    if ref:
        p = os.path.join(ref, "tiny-rwkv", "tiny-rwkv-7v0-834K-FP32.bin")
        if os.path.exists(p):
            return p
    skip("no test model: `rwkvctl model random` failed and ../shared/reference is absent")


def world_test_model(tmp, tokens, layers=1, embd=64, seed=1):
    """A small random model with an embedded World vocabulary of our own: every byte is a token
    (ids 1-256, so any input encodes) and each of `tokens` (bytes, up to 1024 each) one more id
    from 257. A prompt made of those tokens costs the engine one forward pass per token instead of
    one per byte, so a test can stream many megabytes of real bytes through the tokenizer quickly.
    Skips the test when rwkvctl is not built."""
    ctl = rwkvctl_path()
    if not ctl:
        skip("rwkvctl is not built")
    vocab = os.path.join(tmp, "test-vocab.txt")
    with open(vocab, "w") as f:
        for i, t in enumerate([bytes([b]) for b in range(256)] + list(tokens)):
            f.write("%d %s %d\n" % (i + 1, repr(bytes(t)), len(t)))
    raw = os.path.join(tmp, "random-world-raw.rwkv")
    out = os.path.join(tmp, "random-world-L%d-C%d.rwkv" % (layers, embd))
    for cmd in ([ctl, "model", "random", "--version", "7", "--layers", str(layers), "--embd", str(embd),
                 "--vocab", str(257 + len(tokens)), "--seed", str(seed), raw],
                [ctl, "model", "convert", raw, out, "--vocab", vocab]):
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == 0, "%s failed: %s" % (" ".join(cmd[1:3]), r.stderr.decode(errors="replace")))
    os.unlink(raw)
    return out


def as_user(uid):
    """The command prefix that runs a client as uid (None: as ourselves). Skips when not root."""
    if uid is None or uid == os.geteuid():
        return []
    if os.geteuid() != 0:
        skip("running a client as uid %d needs root" % uid)
    need_tool("setpriv")
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]


class BusError(Exception):
    """A failed call: name is the D-Bus error name when known (gdbus), message the human text."""

    def __init__(self, name, message):
        super().__init__("%s: %s" % (name, message))
        self.name = name
        self.message = message


class Bus:
    """A private dbus-daemon in a temporary folder (also a scratch folder for the test: .tmp)."""

    def __init__(self):
        need_tool("dbus-daemon")
        need_tool("busctl")
        self.tmp = tempfile.mkdtemp(prefix="rwkvtest-")
        # Clients of other uids must reach the socket.
        os.chmod(self.tmp, 0o755)
        self.log_path = os.path.join(self.tmp, "dbus-daemon.log")
        self.proc = None
        self.address = None
        self.keep = os.environ.get("RWKVTEST_KEEP") == "1"

    def start(self):
        conf = os.path.join(source_root(), "tests", "lib", "bus.conf")
        sock = os.path.join(self.tmp, "bus")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + conf, "--address=unix:path=" + sock, "--nofork",
             "--nopidfile", "--print-address=1", "--nosyslog"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            self.dump_logs()
            fail("dbus-daemon did not start")
        self.address = line
        os.chmod(sock, 0o777)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def dump_logs(self):
        for name in sorted(os.listdir(self.tmp)):
            if name.endswith(".log"):
                p = os.path.join(self.tmp, name)
                with open(p, "rb") as f:
                    data = f.read()[-20000:]
                sys.stderr.write("----- %s (last %d bytes) -----\n" % (p, len(data)))
                sys.stderr.write(data.decode(errors="replace"))
                sys.stderr.write("\n")

    def __enter__(self):
        return self.start()

    def __exit__(self, etype, value, tb):
        if etype is not None and etype is not SystemExit:
            self.dump_logs()
        self.stop()
        if not self.keep and etype is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            sys.stderr.write("rwkvtest: files kept in %s\n" % self.tmp)
        return False

    # ---- clients -------------------------------------------------------------------------------

    def busctl(self, args, uid=None, timeout=60, input=None):
        cmd = as_user(uid) + ["busctl", "--address=" + self.address] + list(args)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                              input=input)


class Daemon:
    """The real rwkvd on a Bus. config: dict of INI sections {"limits": {"max_streams": 4}}.
    wrap: a command prefix that ends by exec'ing rwkvd (so pid() stays the daemon's), e.g. nsenter.
    keep_notify: keep the notify socket after READY=1, for wait_notify() (only for tests with few
    jobs: the daemon sends a STATUS= per job, and a full socket queue would block it)."""

    def __init__(self, bus, model=None, args=(), config=None, state_dir=None, threads=1, name="rwkvd",
                 verbose=False, env=None, wrap=(), keep_notify=False):
        self.bus = bus
        self.model = model or test_model(bus.tmp)
        self.state_dir = state_dir or os.path.join(bus.tmp, name + "-state")
        self.log_path = os.path.join(bus.tmp, name + ".log")
        self.config_path = None
        if config:
            self.config_path = os.path.join(bus.tmp, name + ".conf")
            with open(self.config_path, "w") as f:
                for section, keys in config.items():
                    f.write("[%s]\n" % section)
                    for k, v in keys.items():
                        f.write("%s=%s\n" % (k, v))
        self.args = list(wrap) + [rwkvd_path(), "--address", bus.address, "--model", self.model, "--state-dir",
                     self.state_dir, "--threads", str(threads)]
        if self.config_path:
            self.args += ["--config", self.config_path]
        if verbose:
            self.args.append("-v")
        self.args += list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.notify = []
        self.keep_notify = keep_notify
        self.nsock = None

    def start(self, timeout=30):
        """Start rwkvd and wait for READY=1 on a notify socket (so the model is mapped and the name
        owned). Returns self; fails the test with the log when the daemon dies first."""
        nsock_path = os.path.join(self.bus.tmp, "notify-%d" % id(self))
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(nsock_path)
        env = dict(self.env)
        env["NOTIFY_SOCKET"] = nsock_path
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        ready = False
        try:
            while not ready:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ns.settimeout(min(left, 0.2))
                try:
                    msg = ns.recv(4096).decode(errors="replace")
                except socket.timeout:
                    if self.proc.poll() is not None:
                        break
                    continue
                self.notify.append(msg)
                ready = any(l == "READY=1" for l in msg.split("\n"))
        finally:
            if self.keep_notify and ready:
                self.nsock = ns  # sd_notify() sends to the path each time: it stays until close_notify()
                self.nsock_path = nsock_path
            else:
                ns.close()
                os.unlink(nsock_path)
        if not ready:
            rc = self.proc.poll()
            self.bus.dump_logs()
            self.kill()
            fail("rwkvd did not become ready (exit status %s)" % rc)
        return self

    def wait_notify(self, line, timeout=10):
        """Wait for a notify message holding `line` (e.g. "STOPPING=1"); needs keep_notify."""
        check(self.nsock is not None, "wait_notify needs Daemon(keep_notify=True)")
        deadline = time.monotonic() + timeout
        while not any(line in m.split("\n") for m in self.notify):
            left = deadline - time.monotonic()
            check(left > 0, "no %r from rwkvd within %ds (got %r)" % (line, timeout, self.notify))
            self.nsock.settimeout(left)
            try:
                self.notify.append(self.nsock.recv(4096).decode(errors="replace"))
            except socket.timeout:
                pass

    def close_notify(self):
        if self.nsock:
            self.nsock.close()
            self.nsock = None
            os.unlink(self.nsock_path)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal rwkvd and wait; returns its exit status (negative: killed by a signal)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise AssertionError("rwkvd did not exit within %ds of signal %d" % (timeout, sig))
        rc = self.proc.returncode
        self.proc = None
        self.close_notify()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
        self.proc = None
        self.close_notify()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid

    def rss_bytes(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, etype, value, tb):
        self.kill()
        return False

    # ---- calls ---------------------------------------------------------------------------------

    def call(self, method, signature="", *args, uid=None, timeout=60):
        """Call a method with busctl; returns the list of out arguments (JSON-decoded).
        Raises BusError(None, message) on a D-Bus error (busctl does not print the name)."""
        cmd = ["--json=short", "call", NAME, PATH, IFACE, method]
        if signature:
            cmd += [signature] + [str(a) for a in args]
        r = self.bus.busctl(cmd, uid=uid, timeout=timeout)
        if r.returncode != 0:
            msg = r.stderr.decode(errors="replace").strip()
            if msg.startswith("Call failed: "):
                msg = msg[len("Call failed: "):]
            raise BusError(None, msg)
        out = r.stdout.decode().strip()
        if not out:
            return []
        return json.loads(out)["data"]

    def get_property(self, name, uid=None):
        r = self.bus.busctl(["--json=short", "get-property", NAME, PATH, IFACE, name], uid=uid)
        if r.returncode != 0:
            raise BusError(None, r.stderr.decode(errors="replace").strip())
        return json.loads(r.stdout.decode())["data"]

    def introspect_xml(self):
        r = self.bus.busctl(["introspect", "--xml-interface", NAME, PATH])
        check(r.returncode == 0, "introspection failed: %s" % r.stderr.decode(errors="replace"))
        return r.stdout.decode()

    def gdbus(self, method, *gvariant_args, uid=None, timeout=60):
        """Call with gdbus (GVariant text arguments, e.g. "'id'", "@a{sv} {}", "uint32 3").
        Returns gdbus's printed reply; raises BusError(name, message) with the error name."""
        need_tool("gdbus")
        cmd = as_user(uid) + ["gdbus", "call", "--address", self.bus.address, "--dest", NAME,
                              "--object-path", PATH, "--method", IFACE + "." + method,
                              "--timeout", str(timeout)] + list(gvariant_args)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 5)
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip()
            # "Error: GDBus.Error:org.rwkvd.Error.NoSuchSession: No session 'x'"
            prefix = "GDBus.Error:"
            i = err.find(prefix)
            if i >= 0:
                rest = err[i + len(prefix):]
                name, _, message = rest.partition(": ")
                raise BusError(name, message)
            raise BusError(None, err)
        return r.stdout.decode().strip()

    def expect_error(self, name, method, *gvariant_args, uid=None, contains=None):
        """Assert that a gdbus call fails with org.rwkvd.Error.<name> (or a full error name);
        returns the message."""
        full = name if "." in name else "org.rwkvd.Error." + name
        try:
            out = self.gdbus(method, *gvariant_args, uid=uid)
        except BusError as e:
            check(e.name == full, "%s: expected %s, got %s: %s" % (method, full, e.name, e.message))
            check(e.message, "%s: error %s without a message" % (method, full))
            if contains:
                check(contains in e.message, "%s: message %r lacks %r" % (method, e.message, contains))
            return e.message
        raise AssertionError("%s: expected %s, the call succeeded: %s" % (method, full, out))


def run_test(fn):
    """Run fn() as the test body: AssertionError/BusError print the reason and exit 1."""
    try:
        fn()
    except (AssertionError, BusError) as e:
        import traceback
        traceback.print_exc()
        fail(str(e))
    sys.exit(0)
