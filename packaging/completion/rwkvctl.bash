# bash completion for rwkvctl(1)                                      -*- shell-script -*-

_rwkvctl_sessions()
{
        # Session ids come from the daemon; stay silent (and quick) when it is not reachable.
        local bus=("$@")
        timeout 2 rwkvctl "${bus[@]}" session list 2>/dev/null | awk 'NR > 1 || !/^ID/ { print $1 }'
}

_rwkvctl()
{
        local cur prev words cword
        _init_completion || return

        local global_opts='--system --user --address --json --help --version'
        local verbs='generate chat session status model eval run tokenize detokenize bench perplexity'
        local -A verb_opts=(
                [generate]='--session --max-tokens --temperature --top-p --top-k --seed --stop'
                [chat]='--session'
                [session]=''
                [status]=''
                [model]=''
                [eval]='--model --vocab --tokens --logits --sequence --threads'
                [run]='--model --vocab --max-tokens --temperature --top-p --top-k --min-p
                       --presence-penalty --frequency-penalty --penalty-decay --seed --stop --threads'
                [tokenize]='--model --vocab'
                [detokenize]='--model --vocab'
                [bench]='--model --threads --prompt --gen --batch'
                [perplexity]='--model --vocab --threads'
        )

        # Find the verb (and the bus options given before it, for session-id lookups).
        local i verb='' verb_at=0 bus=()
        for ((i = 1; i < cword; i++)); do
                case ${words[i]} in
                --address)
                        bus+=(--address "${words[i + 1]}")
                        ((i++))
                        ;;
                --system | --user) bus+=("${words[i]}") ;;
                -*) ;;
                *)
                        verb=${words[i]}
                        verb_at=$i
                        break
                        ;;
                esac
        done

        case $prev in
        --address)
                COMPREPLY=($(compgen -W 'unix:path= unix:abstract=' -- "$cur"))
                compopt -o nospace
                return
                ;;
        --model | --vocab)
                _filedir
                return
                ;;
        --session)
                COMPREPLY=($(compgen -W "$(_rwkvctl_sessions "${bus[@]}")" -- "$cur"))
                return
                ;;
        --max-tokens | --temperature | --top-p | --top-k | --min-p | --presence-penalty | \
                --frequency-penalty | --penalty-decay | --seed | --stop | --tokens | \
                --threads | --prompt | --gen | --batch | --layers | --embd | --version)
                return # a value: nothing to offer
                ;;
        esac

        if [[ -z $verb ]]; then
                COMPREPLY=($(compgen -W "$global_opts $verbs" -- "$cur"))
                return
        fi

        case $verb in
        session)
                local sub=${words[verb_at + 1]}
                if ((cword == verb_at + 1)); then
                        COMPREPLY=($(compgen -W 'list show fork delete export import' -- "$cur"))
                elif [[ $sub == import ]]; then
                        _filedir
                elif [[ $sub == export ]] && ((cword == verb_at + 3)); then
                        _filedir
                elif ((cword == verb_at + 2)); then
                        COMPREPLY=($(compgen -W "$(_rwkvctl_sessions "${bus[@]}")" -- "$cur"))
                fi
                ;;
        model)
                if ((cword == verb_at + 1)); then
                        COMPREPLY=($(compgen -W 'info convert random' -- "$cur"))
                elif [[ $prev == --type ]]; then
                        COMPREPLY=($(compgen -W 'f32 f16 bf16 q8_0 q4_0' -- "$cur"))
                elif [[ $cur == -* ]]; then
                        case ${words[verb_at + 1]} in
                        info) COMPREPLY=($(compgen -W '--tensors --verify' -- "$cur")) ;;
                        convert) COMPREPLY=($(compgen -W '--type --vocab' -- "$cur")) ;;
                        random) COMPREPLY=($(compgen -W '--version --layers --embd --vocab --seed --type' -- "$cur")) ;;
                        esac
                else
                        _filedir
                fi
                ;;
        *)
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "${verb_opts[$verb]} --json --help" -- "$cur"))
                fi
                ;;
        esac
} &&
        complete -F _rwkvctl rwkvctl

# ex: filetype=sh
