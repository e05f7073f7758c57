#!/usr/bin/env python3
"""test-errors: the online verbs' errors that are not the daemon's: a bus that cannot be reached is
one line that says so and exit status 1 (not a second "Invalid argument" line from a call made
without a connection); an argument that a D-Bus string cannot carry (not valid UTF-8) is named,
exit status 2, and nothing reaches the daemon (no session is created); so is an empty session id."""

import json

import clitest
import rwkvtest
from rwkvtest import check

NOWHERE = "unix:path=/nonexistent/bus"


def main():
    # No bus at that address: one line naming it, exit status 1, for every online verb.
    c = clitest.Ctl()
    for args in (("status",), ("generate", "hi"), ("session", "list"), ("session", "show", "x"),
                 ("chat", "--session", "x"), ("session", "export", "x", "-")):
        for how in (("--address", NOWHERE), ()):
            if not how:  # the same through $RWKVD_BUS_ADDRESS
                c.env["RWKVD_BUS_ADDRESS"] = NOWHERE
            c.error(*(how + args), status=1, contains="cannot connect to the bus at '%s'" % NOWHERE)
            c.env.pop("RWKVD_BUS_ADDRESS", None)

    with rwkvtest.Bus() as bus, rwkvtest.Daemon(bus, threads=1):
        c = clitest.Ctl(bus.address)
        c.ok("generate", "--session", "s", "--max-tokens", "2", "--seed", "1", "Hello")
        bad = b"caf\xe9"
        for args, what in (
                (("generate", "--max-tokens", "3", bad), "generate: the prompt is not valid UTF-8"),
                (("generate", "--max-tokens", "3", "--stop", b"\xff", "hi"), "generate: the --stop string"),
                (("generate", "--session", bad, "hi"), "generate: the --session id"),
                (("chat", "--session", "new-chat", "--system", b"\xff"), "chat: the --system text"),
                (("chat", "--session", bad), "chat: the --session id"),
                (("chat", "--session", "new-chat", "--stop", b"\xff\xfe"), "chat: the --stop string"),
                (("session", "show", b"\xff"), "session show: the session id"),
                (("session", "delete", bad), "session delete: the session id"),
                (("session", "fork", bad), "session fork: the session id"),
                (("session", "fork", "s", bad), "session fork: the new session id"),
                (("session", "export", bad, "-"), "session export: the session id"),
                (("session", "import", "-", bad), "session import: the session id")):
            line = c.error(*args, status=2, contains=what, input=b"hi\n")
            check("not valid UTF-8" in line, "%r: %r" % (args, line))
        ids = [s["id"] for s in json.loads(c.ok("--json", "session", "list"))["sessions"]]
        check(ids == ["s"], "sessions after the refused calls: %r" % ids)

        # An empty session id is invalid usage: CreateSession("") would store a session under an id
        # the daemon picks and rwkvctl never prints.
        for args, what in (
                (("generate", "--session", "", "--max-tokens", "3", "x"), "generate: the --session id is empty"),
                (("chat", "--session", ""), "chat: the --session id is empty"),
                (("session", "show", ""), "session show: the session id is empty"),
                (("session", "delete", ""), "session delete: the session id is empty"),
                (("session", "export", "", "-"), "session export: the session id is empty"),
                (("session", "fork", "s", ""), "session fork: the new session id is empty"),
                (("session", "import", "-", ""), "session import: the session id is empty")):
            c.error(*args, status=2, contains=what, input=b"hi\n")
        ids = [s["id"] for s in json.loads(c.ok("--json", "session", "list"))["sessions"]]
        check(ids == ["s"], "sessions after empty ids: %r" % ids)
        # The same bytes on stdin are a prompt like any other (streamed: a D-Bus string cannot
        # carry them; this raced with the daemon's end of input before b41f110)
        for _ in range(20):
            c.ok("generate", "--max-tokens", "2", input=bad)
    print("ok")


if __name__ == "__main__":
    rwkvtest.run_test(main)
