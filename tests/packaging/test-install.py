#!/usr/bin/env python3
"""test-install: `meson install --destdir` into a temporary folder, then check the installed tree.

Checks that everything lands under DESTDIR + prefix (sysconfdir aside, which may be absolute),
that the units, bus policy, activation files, sysusers/tmpfiles entries, config, completion and
man pages are where systemd, dbus-daemon, bash and man look for them, and that the files that name
other installed files (ExecStart=, Exec=, the config's model path) name them correctly.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SKIP = 77
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg, file=sys.stderr)


def options(build):
    out = subprocess.run(["meson", "introspect", "--buildoptions", build], check=True,
                         capture_output=True, text=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def find(root, suffix):
    """Installed files whose path ends with suffix."""
    hits = []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if p.endswith(suffix):
                hits.append(p)
    return hits


def ini_values(path, key):
    vals = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(key + "="):
                vals.append(line[len(key) + 1:])
    return vals


def main():
    build = os.environ.get("RWKV_BUILD_ROOT")
    src = os.environ.get("RWKV_SOURCE_ROOT")
    if not build or not src:
        print("SKIP: run through meson test (RWKV_BUILD_ROOT unset)", file=sys.stderr)
        return SKIP
    if shutil.which("meson") is None:
        print("SKIP: meson is not in PATH", file=sys.stderr)
        return SKIP
    opt = options(build)
    prefix = opt["prefix"]
    sysconfdir = opt["sysconfdir"]
    if not sysconfdir.startswith("/"):
        sysconfdir = os.path.join(prefix, sysconfdir)
    datadir = os.path.join(prefix, opt["datadir"])
    libexecdir = os.path.join(prefix, opt["libexecdir"])
    mandir = os.path.join(prefix, opt["mandir"])

    with tempfile.TemporaryDirectory(prefix="rwkvd-install-") as dest:
        r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--quiet",
                            "--destdir", dest], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            print("FAIL: meson install failed", file=sys.stderr)
            return 1

        def inst(path):
            return os.path.join(dest, path.lstrip("/"))

        # Nothing outside the prefix (and the configured sysconfdir).
        allowed = [inst(prefix), inst(sysconfdir)]
        if prefix == "/usr":
            allowed.append(inst("/lib"))        # Debian's systemd.pc: /lib/systemd/system
        for d, _, files in os.walk(dest):
            for f in files:
                p = os.path.join(d, f)
                check(any(p.startswith(a + "/") for a in allowed),
                      f"installed outside the prefix: {os.path.relpath(p, dest)}")

        def one(suffix, what):
            hits = find(dest, suffix)
            check(len(hits) == 1, f"{what}: expected one installed */{suffix}, found {hits}")
            return hits[0] if hits else None

        unit = one("systemd/system/rwkvd.service", "system unit")
        user_unit = one("systemd/user/rwkvd.service", "user unit")
        policy = one("dbus-1/system.d/org.rwkvd.Daemon1.conf", "system bus policy")
        sys_act = one("dbus-1/system-services/org.rwkvd.Daemon1.service", "system activation")
        ses_act = one("dbus-1/services/org.rwkvd.Daemon1.service", "session activation")
        one("sysusers.d/rwkvd.conf", "sysusers.d entry")
        one("tmpfiles.d/rwkvd.conf", "tmpfiles.d entry")
        one("bash-completion/completions/rwkvctl", "bash completion")
        one("dbus-1/interfaces/org.rwkvd.Daemon1.xml", "interface XML")
        conf = inst(os.path.join(sysconfdir, "rwkvd", "rwkvd.conf"))
        check(os.path.isfile(conf), f"config not installed at {sysconfdir}/rwkvd/rwkvd.conf")

        model = os.path.join(datadir, "rwkvd", "default.rwkv")
        if os.path.exists(os.path.join(src, "models", "default.rwkv")):
            check(os.path.isfile(inst(model)), f"default model not installed at {model}")
        rwkvd = os.path.join(libexecdir, "rwkvd")
        daemon_built = os.path.exists(os.path.join(build, "daemon", "rwkvd"))
        if daemon_built:
            check(os.access(inst(rwkvd), os.X_OK), f"rwkvd not installed at {rwkvd}")
        if os.path.exists(os.path.join(build, "tools", "rwkvctl", "rwkvctl")):
            check(os.access(inst(os.path.join(prefix, opt["bindir"], "rwkvctl")), os.X_OK),
                  "rwkvctl not installed to bindir")

        # Files that name other installed files.
        if unit:
            check(ini_values(unit, "ExecStart") == [rwkvd + " --system"],
                  f"system unit ExecStart= {ini_values(unit, 'ExecStart')} != {rwkvd} --system")
            check(ini_values(unit, "Type") == ["notify"], "system unit is not Type=notify")
            check(ini_values(unit, "User") == ["rwkvd"], "system unit does not run as rwkvd")
            check(ini_values(unit, "StateDirectory") == ["rwkvd"], "StateDirectory=rwkvd missing")
            check(not re.search(r"@[a-z_]+@", open(unit).read()), "unsubstituted @var@ in the unit")
        if user_unit:
            check(ini_values(user_unit, "ExecStart") ==
                  [f"{rwkvd} --user --model {model}"], "user unit ExecStart= is wrong")
        if sys_act:
            check(ini_values(sys_act, "Name") == ["org.rwkvd.Daemon1"], "system activation Name=")
            check(ini_values(sys_act, "SystemdService") == ["rwkvd.service"],
                  "system activation SystemdService= is not rwkvd.service")
            check(ini_values(sys_act, "User") == ["rwkvd"], "system activation User= is not rwkvd")
        if ses_act:
            check(ini_values(ses_act, "Exec") == [f"{rwkvd} --user --model {model}"],
                  "session activation Exec= is wrong")
        if os.path.isfile(conf):
            paths = [v.strip() for v in open(conf) if v.replace(" ", "").startswith("path=")]
            check(paths == [f"path = {model}"], f"config model path {paths} != {model}")

        # The bus policy: well-formed; only rwkvd owns the name; everyone may call the interface.
        if policy:
            root = ET.parse(policy).getroot()
            owners = [(p.get("user"), p.get("context"), a.tag)
                      for p in root.iter("policy") for a in p
                      if a.get("own") == "org.rwkvd.Daemon1"]
            check(("rwkvd", None, "allow") in owners, "policy: rwkvd may not own the name")
            check(all(t == "deny" for u, c, t in owners if u != "rwkvd"),
                  "policy: someone other than rwkvd may own the name")
            default = [p for p in root.iter("policy") if p.get("context") == "default"]
            check(any(a.tag == "allow" and a.get("send_interface") == "org.rwkvd.Daemon1"
                      for p in default for a in p), "policy: default context may not call")

        # Man pages: every built page installed in its section.
        for f in sorted(os.listdir(os.path.join(build, "man"))):
            if f.split(".")[-1] in "12345678" and not f.endswith(".scd"):
                sec = f.split(".")[-1]
                check(os.path.isfile(inst(os.path.join(mandir, "man" + sec, f))),
                      f"man page {f} not installed in man{sec}")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("install tree ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
