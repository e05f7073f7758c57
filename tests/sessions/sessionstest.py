"""Helpers for the sessions end-to-end tests: generate through rwkvctl, watch commits reach disk."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest  # noqa: E402


def peek_path():
    p = os.path.join(rwkvtest.build_root(), "tests", "sessions", "store-peek")
    if not os.access(p, os.X_OK):
        rwkvtest.skip("store-peek is not built at %s" % p)
    return p


def ctl():
    p = rwkvtest.rwkvctl_path()
    if not p:
        rwkvtest.skip("rwkvctl is not built")
    return p


def generate(bus, sid, prompt, n, temperature=0.0, seed=None, top_p=None, timeout=120, records=None):
    """One turn through `rwkvctl generate --json`: returns (text, end record); the text records go to
    `records` when given. Text, not token ids: a record carries the text completed by its token, and
    bytes of an unfinished UTF-8 character wait for the next token (also across turns: the session
    keeps them), so only the concatenated text is comparable."""
    cmd = [ctl(), "--address", bus.address, "--json", "generate", "--session", sid, "--max-tokens", str(n),
           "--temperature", repr(temperature)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if top_p is not None:
        cmd += ["--top-p", repr(top_p)]
    # An empty prompt goes through stdin: "continue the session's text".
    if prompt:
        cmd.append(prompt)
    r = subprocess.run(cmd, input=b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("rwkvctl generate %s failed (%d): %s" % (sid, r.returncode,
                                                                       r.stderr.decode(errors="replace")))
    text, end = "", None
    for line in r.stdout.decode().splitlines():
        o = json.loads(line)
        if "text" in o:
            text += o["text"]
            if records is not None:
                records.append(o)
        if o.get("end"):
            end = o
    rwkvtest.check(end is not None, "no end record from %s" % sid)
    return text, end


def peek(state_dir, sid, uid=None, turn=None):
    """(tokens, turns, bytes) of the committed file, None when there is none; fails on a corrupt one."""
    uid = os.geteuid() if uid is None else uid
    args = [peek_path(), state_dir, str(uid), sid] + ([str(turn)] if turn is not None else [])
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if r.returncode == 2:
        return None
    if r.returncode != 0:
        raise AssertionError("store-peek %s: %s" % (sid, r.stderr.decode(errors="replace")))
    t, turns, size = r.stdout.decode().split()
    return int(t), int(turns), int(size)


def wait_committed(state_dir, sid, tokens, timeout=30):
    """Wait until the session's file on disk holds `tokens` tokens (the daemon commits after the
    end record, off the bus thread)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = peek(state_dir, sid)
        if last and last[0] == tokens:
            return last
        time.sleep(0.02)
    raise AssertionError("session %s: %r on disk, expected %d tokens committed" % (sid, last, tokens))


def wait_checkpoint(state_dir, sid, turn, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = peek(state_dir, sid, turn=turn)
        if c:
            return c
        time.sleep(0.02)
    return None


def corrupt_files(state_dir):
    out = []
    for root, _, files in os.walk(state_dir):
        out += [os.path.join(root, f) for f in files if f.endswith(".corrupt")]
    return out
