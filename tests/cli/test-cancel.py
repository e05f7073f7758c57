#!/usr/bin/env python3
"""test-cancel: a generation the daemon cancels (here: rwkvd stopped with SIGTERM mid-stream) is not
a success: rwkvctl prints the text it got, then one line on stderr saying the daemon cancelled it,
and exits 1 (with --json the end record still comes, "stop_reason": "cancelled"). Its own Ctrl-C
stays exit status 130 with nothing on stderr."""

import json
import signal
import subprocess

import clitest
import rwkvtest
from rwkvtest import check


def started(c, *args):
    """A long generation that has printed something (so the daemon is in its decode loop)."""
    p = c.popen(*args, "--max-tokens", "1000000", "Once upon a time", stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
    check(p.stdout.read(1), "rwkvctl %s printed nothing" % " ".join(args))
    return p


def main():
    with rwkvtest.Bus() as bus:
        # A slower model than the default test model: the stream is surely still running when
        # the daemon gets SIGTERM.
        model = rwkvtest.test_model(bus.tmp, layers=4, embd=256)
        config = {"limits": {"max_tokens_per_request": 1000000}}
        d = rwkvtest.Daemon(bus, model=model, threads=1, config=config)
        c = clitest.Ctl(bus.address)
        try:
            for args in (("generate",), ("--json", "generate"), ("generate", "--session", "kept")):
                d.start()
                p = started(c, *args)
                rc = d.stop(signal.SIGTERM)
                out, err = p.communicate(timeout=60)
                err = err.decode(errors="replace")
                what = "rwkvctl %s, daemon stopped (exit %s)" % (" ".join(args), rc)
                check(p.returncode == 1, "%s: exit status %d: %r" % (what, p.returncode, err))
                lines = err.splitlines()
                check(len(lines) == 1 and lines[0].startswith("rwkvctl: generate: ")
                      and "the daemon cancelled the generation" in lines[0], "%s: stderr %r" % (what, err))
                if "--json" in args:
                    end = json.loads(out.decode().splitlines()[-1])
                    check(end.get("end") is True and end.get("stop_reason") == "cancelled", "%s: %r" % (what, end))

            # Our own Ctrl-C: 130, and no message.
            d.start()
            p = started(c, "generate")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
            check(p.returncode == 130 and not err, "Ctrl-C: exit %d, stderr %r" % (p.returncode, err))
        finally:
            d.kill()
    print("ok")


if __name__ == "__main__":
    rwkvtest.run_test(main)
