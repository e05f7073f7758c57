#!/usr/bin/env bash
# test-completion: the bash completion parses and completes verbs, sub-commands and options.
set -uo pipefail
src=${RWKV_SOURCE_ROOT:?run through meson test}
comp=$src/packaging/completion/rwkvctl.bash
bash -n "$comp" || { echo "FAIL: syntax error in $comp" >&2; exit 1; }
if command -v zsh >/dev/null; then
        zsh -n "$src/packaging/completion/_rwkvctl" || { echo "FAIL: zsh syntax" >&2; exit 1; }
fi
bc=/usr/share/bash-completion/bash_completion
[ -r "$bc" ] || { echo "SKIP: bash-completion is not installed (only the syntax was checked)" >&2; exit 77; }

# Complete the command line "$@" (the last word is the one being completed); print the candidates.
complete_line() {
        bash --norc --noprofile -c '
                source "$1" 2>/dev/null
                source "$2"
                shift 2
                COMP_WORDS=("$@")
                COMP_CWORD=$(($# - 1))
                COMP_LINE="$*"
                COMP_POINT=${#COMP_LINE}
                _rwkvctl rwkvctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf "%s\n" "${COMPREPLY[@]}"
        ' _ "$bc" "$comp" "$@"
}

rc=0
expect() {   # expect WORD -- COMMAND LINE...
        local want=$1; shift 2
        local got
        got=$(complete_line "$@")
        if ! grep -qx -- "$want" <<<"$got"; then
                echo "FAIL: completing '$*' did not offer '$want' (got: $(echo $got))" >&2
                rc=1
        fi
}
expect generate -- rwkvctl gen
expect session -- rwkvctl --user ses
expect --address -- rwkvctl --addr
expect fork -- rwkvctl session fo
expect convert -- rwkvctl model con
expect --max-tokens -- rwkvctl generate --max
expect --logits -- rwkvctl eval --lo
expect q8_0 -- rwkvctl model convert --type q8
expect --presence-penalty -- rwkvctl run --pres
exit $rc
