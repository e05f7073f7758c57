#!/usr/bin/env python3
"""test-prompt-stream: a streamed prompt whose end (EOF) comes after the daemon fed every byte it had
received still generates; one cancelled in the middle leaves a session that says why it cannot
continue from an empty prompt, and continues from a new one.

On the byte-level default model every byte is a token, so a stream that pauses before its end has
all its bytes fed by then: the last chunk that runs is not the one that sees EOF."""
import ctypes
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402

TEXT = b"And God said, Let there be light: and there was light. " * 20


def main():
    ctl = rt.need_rwkvctl()
    model = rt.default_model()
    with rt.Bus() as bus:
        env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)
        with rt.Daemon(bus, model=model, threads=2) as d:
            # A prompt streamed through the client library, then a pause with the input open, then
            # EOF (rwkvctl itself sends whole 64 KiB pieces, so its pauses fall on that grid)
            lib = ctypes.CDLL(os.path.join(rt.build_root(), "client_lib", "librwkv-client.so.0"))
            lib.rwkv_stream_get_error_message.restype = ctypes.c_char_p
            client, opts, stream = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
            rt.check(lib.rwkv_client_new(2, bus.address.encode(), ctypes.byref(client)) == 0, "rwkv_client_new")
            rt.check(lib.rwkv_generate_options_new(ctypes.byref(opts)) == 0, "options")
            lib.rwkv_generate_options_set_max_tokens(opts, 5)
            lib.rwkv_generate_options_set_prompt_stream(opts, 1)
            d.call("CreateSession", "sa{sv}", "paused", 0)
            rt.check(lib.rwkv_generate_start(client, b"paused", b"", 0, opts, ctypes.byref(stream)) == 0, "start")
            rt.check(lib.rwkv_stream_write(stream, TEXT, len(TEXT), -1) == len(TEXT), "write")
            time.sleep(0.5)  # the daemon feeds every byte meanwhile
            rt.check(lib.rwkv_stream_close_input(stream) == 0, "close input")
            events = []
            while True:
                e = lib.rwkv_stream_read(stream, 30000)
                events.append(e)
                if e in (0, 2, 3) or e < 0:
                    break
            rt.check(events[-1] == 2, "a stream that paused before EOF: events %s, error %r"
                     % (events, lib.rwkv_stream_get_error_message(stream) if events[-1] == 3 else None))
            rt.check(1 in events, "no text after a paused stream")
            lib.rwkv_stream_free(stream)
            lib.rwkv_generate_options_free(opts)
            lib.rwkv_client_free(client)
            tokens = d.call("GetSession", "s", "paused")[0]["tokens"]["data"]
            rt.check(tokens == len(TEXT) + 5, "session tokens %d, want %d" % (tokens, len(TEXT) + 5))
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
