#!/usr/bin/env python3
"""test-prompt-stream: a streamed prompt whose end (EOF) comes after the daemon fed every byte it had
received still generates; one cancelled in the middle leaves a session that says why it cannot
continue from an empty prompt, and continues from a new one.

On the byte-level default model every byte is a token, so a stream that pauses before its end has
all its bytes fed by then: the last chunk that runs is not the one that sees EOF."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402

STREAM = 1100  # bytes of the paused stream
TEXT = b"And God said, Let there be light: and there was light. " * 20


def main():
    ctl = rt.need_rwkvctl()
    model = rt.default_model()
    with rt.Bus() as bus:
        env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)
        with rt.Daemon(bus, model=model, threads=2) as d:
            # A prompt streamed through the ring, then a pause with the input open, then EOF
            # (rwkv-test-client: rwkvctl itself sends whole 64 KiB pieces, so its pauses fall on
            # that grid)
            client = os.path.join(rt.build_root(), "tests", "daemon", "rwkv-test-client")
            d.call("CreateSession", "sa{sv}", "paused", 0)
            r = subprocess.run([client, bus.address, "stream", "paused", "", "5", str(STREAM), "500"],
                               capture_output=True, timeout=60)
            rt.check(r.returncode == 0, "a stream that paused before EOF: rc %d, %r" % (r.returncode, r.stderr))
            rt.check(len(r.stdout) > 0, "no text after a paused stream")
            tokens = d.call("GetSession", "s", "paused")[0]["tokens"]["data"]
            rt.check(tokens == STREAM + 5, "session tokens %d, want %d" % (tokens, STREAM + 5))
            r = subprocess.run([ctl, "generate", "--session", "paused", "--max-tokens", "3", ""], env=env,
                               capture_output=True, timeout=60)
            rt.check(r.returncode == 0 and len(r.stdout) > 0, "continuing after a paused stream: %r" % r.stderr)

            # Ctrl-C in the middle of a long streamed prompt (far more than the daemon feeds in the
            # half second before it): the state keeps what was fed, there is no prediction after it
            big = os.path.join(bus.tmp, "big.txt")
            with open(big, "wb") as f:
                f.write(TEXT * 1500)  # 1.6 MB
            feeder = subprocess.Popen(["sh", "-c", "cat '%s'; exec sleep 60" % big], stdout=subprocess.PIPE)
            gen = subprocess.Popen([ctl, "generate", "--session", "cut", "--max-tokens", "5"], stdin=feeder.stdout,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            feeder.stdout.close()
            time.sleep(0.5)
            # as a terminal's Ctrl-C: the whole pipeline gets it
            gen.send_signal(signal.SIGINT)
            feeder.kill()
            out, err = gen.communicate(timeout=60)
            feeder.wait()
            rt.check(gen.returncode == 130, "Ctrl-C during the prompt: rc %d, %r" % (gen.returncode, err))
            cut = d.call("GetSession", "s", "cut")[0]["tokens"]["data"]
            rt.check(0 < cut < len(TEXT) * 1500, "the cancelled session holds %d tokens" % cut)
            r = subprocess.run([ctl, "generate", "--session", "cut", "--max-tokens", "3", ""], env=env,
                               capture_output=True, timeout=60)
            rt.check(r.returncode == 1 and b"cancelled before its end" in r.stderr,
                     "empty prompt after a cancelled one: rc %d, %r" % (r.returncode, r.stderr))
            r = subprocess.run([ctl, "generate", "--session", "cut", "--max-tokens", "3", " And"], env=env,
                               capture_output=True, timeout=60)
            rt.check(r.returncode == 0 and len(r.stdout) > 0, "a new prompt after a cancelled one: %r" % r.stderr)
            print("paused stream: %d tokens; cancelled stream kept %d of %d bytes" % (tokens, cut, len(TEXT) * 1500))
            rt.check(d.stop() == 0, "exit status")


rt.run_test(main)
