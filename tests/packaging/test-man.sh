#!/usr/bin/env bash
# test-man: every man/*.scd is listed in man/meson.build, and every built page renders without a
# warning: `man -l` at MANWIDTH=80 and `groff -ww -z -man` must print nothing on stderr.
set -uo pipefail
src=${RWKV_SOURCE_ROOT:?run through meson test}
build=${RWKV_BUILD_ROOT:?run through meson test}
rc=0

for scd in "$src"/man/*.scd; do
        [ -e "$scd" ] || continue
        page=$(basename "$scd" .scd)
        if ! grep -q "'$page'" "$src/man/meson.build"; then
                echo "FAIL: man/$page.scd is not listed in man/meson.build" >&2
                rc=1
        fi
done

if ! command -v scdoc >/dev/null; then
        echo "SKIP: scdoc is not installed, no pages were built" >&2
        exit 77
fi
command -v man >/dev/null || { echo "SKIP: man (man-db) is not installed" >&2; exit 77; }

n=0
for page in "$build"/man/*.[1-8]; do
        [ -e "$page" ] || continue
        n=$((n + 1))
        err=$(MANWIDTH=80 MAN_KEEP_FORMATTING=0 man -l "$page" 2>&1 >/dev/null)
        if [ -n "$err" ]; then
                echo "FAIL: man -l $(basename "$page"):" >&2
                echo "$err" >&2
                rc=1
        fi
        if command -v groff >/dev/null; then
                err=$(groff -ww -z -man "$page" 2>&1)
                if [ -n "$err" ]; then
                        echo "FAIL: groff -ww $(basename "$page"):" >&2
                        echo "$err" >&2
                        rc=1
                fi
        fi
        # A page must have a NAME section (whatis/apropos read it).
        grep -q '^\.SH NAME' "$page" || { echo "FAIL: $(basename "$page") has no NAME" >&2; rc=1; }
done
[ -e "$build/man/org.rwkvd.Daemon1.5" ] || { echo "FAIL: org.rwkvd.Daemon1.5 was not built" >&2; rc=1; }
echo "$n page(s) checked"
exit $rc
