#!/usr/bin/env python3
"""test-policy: the installed system bus policy (packaging/org.rwkvd.Daemon1.conf) does what it
says, enforced by a real dbus-daemon.

A private bus gets the deny-by-default policy of Debian's system bus plus our policy file, with
the daemon's user "rwkvd" mapped to root (the uid this test runs rwkvd as). Then:
  - nobody (uid 65534) may not own org.rwkvd.Daemon1;
  - rwkvd (as the daemon user) owns it and becomes ready;
  - nobody may call the interface, read properties and introspect;
  - nobody may not call Properties.Set (the bus refuses it before the daemon sees it).
Needs root (two uids), dbus-daemon, busctl, setpriv and a built rwkvd; skips otherwise.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest  # noqa: E402

NAME = "org.rwkvd.Daemon1"

# The default context of Debian's /usr/share/dbus-1/system.conf: nothing may be owned or called
# unless a policy file allows it.
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
  <include>%s</include>
</busconfig>
"""


class PolicyBus(rwkvtest.Bus):
    """rwkvtest's private bus, configured with the system-bus defaults and our policy."""

    def start(self):
        src = rwkvtest.source_root()
        with open(os.path.join(src, "packaging", "org.rwkvd.Daemon1.conf")) as f:
            policy = f.read()
        if 'user="rwkvd"' not in policy:
            rwkvtest.fail("the policy has no <policy user=\"rwkvd\"> section")
        policy_path = os.path.join(self.tmp, "org.rwkvd.Daemon1.conf")
        with open(policy_path, "w") as f:
            f.write(policy.replace('user="rwkvd"', 'user="root"'))
        conf = os.path.join(self.tmp, "system.conf")
        with open(conf, "w") as f:
            f.write(BUS_CONF % policy_path)
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
            rwkvtest.fail("dbus-daemon did not start with the policy")
        self.address = line
        os.chmod(sock, 0o777)
        return self


def main():
    if os.geteuid() != 0:
        rwkvtest.skip("needs root: the policy is checked with two uids")
    rwkvtest.rwkvd_path()
    rwkvtest.need_tool("setpriv")
    nobody = rwkvtest.NOBODY
    failures = []

    def check(cond, msg):
        if not cond:
            failures.append(msg)
            print("FAIL: " + msg, file=sys.stderr)

    with PolicyBus() as bus:
        # A stranger may not take the name (before or after the daemon has it).
        r = bus.busctl(["call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "RequestName", "su", NAME, "0"], uid=nobody)
        check(r.returncode != 0 and b"Access denied" in r.stderr,
              "nobody could request the name: %r" % (r.stdout + r.stderr))

        with rwkvtest.Daemon(bus) as d:  # fails the test unless rwkvd owns the name
            r = bus.busctl(["call", NAME, "/org/rwkvd/Daemon1", NAME, "Status"], uid=nobody)
            check(r.returncode == 0 and r.stdout.startswith(b"a{sv}"),
                  "nobody could not call Status: %r" % (r.stdout + r.stderr))
            r = bus.busctl(["get-property", NAME, "/org/rwkvd/Daemon1", NAME, "Version"],
                           uid=nobody)
            check(r.returncode == 0 and r.stdout.startswith(b"s "),
                  "nobody could not read Version: %r" % (r.stdout + r.stderr))
            r = bus.busctl(["introspect", "--xml-interface", NAME, "/org/rwkvd/Daemon1"],
                           uid=nobody)
            check(r.returncode == 0 and b"org.rwkvd.Daemon1" in r.stdout,
                  "nobody could not introspect: %r" % r.stderr)
            r = bus.busctl(["set-property", NAME, "/org/rwkvd/Daemon1", NAME, "Threads", "u",
                            "1"], uid=nobody)
            check(r.returncode != 0 and (b"Rejected send message" in r.stderr
                                         or b"Access denied" in r.stderr),
                  "the bus let nobody call Properties.Set: %r" % (r.stdout + r.stderr))
            r = bus.busctl(["call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "RequestName", "su", NAME, "0"], uid=nobody)
            check(r.returncode != 0, "nobody could request the owned name")
            d.stop()
        if failures:
            bus.dump_logs()
    if failures:
        return 1
    print("policy ok: only the daemon user owns the name; anyone may call the interface")
    return 0


if __name__ == "__main__":
    sys.exit(main())
