"""clitest: what the tests of rwkvctl's online verbs share (on top of tests/lib/rwkvtest.py): running
rwkvctl against a daemon on a private bus, and the shape of an error (non-zero exit status, ONE
"rwkvctl:" line on stderr, nothing on stdout)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest  # noqa: E402
from rwkvtest import check  # noqa: E402


def ctl_path():
    return rwkvtest.need_rwkvctl()


class Ctl:
    """rwkvctl with RWKVD_BUS_ADDRESS set to address (None: unset, for the offline verbs)."""

    def __init__(self, address=None):
        self.path = ctl_path()
        self.env = dict(os.environ)
        self.env.pop("RWKVD_BUS_ADDRESS", None)
        if address:
            self.env["RWKVD_BUS_ADDRESS"] = address

    def argv(self, args):
        return [self.path] + [a if isinstance(a, bytes) else str(a) for a in args]

    def run(self, *args, input=None, timeout=120):
        return subprocess.run(self.argv(args), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=self.env, timeout=timeout)

    def popen(self, *args, **kw):
        return subprocess.Popen(self.argv(args), env=self.env, **kw)

    def ok(self, *args, input=None):
        r = self.run(*args, input=input)
        check(r.returncode == 0, "rwkvctl %s: exit %d: %r" % (show(args), r.returncode, r.stderr))
        return r.stdout

    def error(self, *args, status=None, contains=(), input=None):
        """The command fails (with status, when given) with one "rwkvctl: " line on stderr that
        holds every string of contains, and prints nothing on stdout. Returns the line."""
        r = self.run(*args, input=input)
        what = "rwkvctl " + show(args)
        err = r.stderr.decode(errors="replace")
        check(r.returncode != 0, "%s: succeeded: %r" % (what, r.stdout))
        check(status is None or r.returncode == status,
              "%s: exit status %d, expected %d: %r" % (what, r.returncode, status, err))
        lines = err.splitlines()
        check(len(lines) == 1 and lines[0].startswith("rwkvctl: "), "%s: stderr is not one 'rwkvctl:' line: %r"
              % (what, err))
        check(not r.stdout, "%s: printed on stdout: %r" % (what, r.stdout))
        for want in ([contains] if isinstance(contains, str) else contains):
            check(want in lines[0], "%s: %r lacks %r" % (what, lines[0], want))
        return lines[0]


def show(args):
    return " ".join(repr(a) if isinstance(a, bytes) else str(a) for a in args)
