# bash completion for svctl (pyinit-pid1): commands, options and service names.
# Installed as /usr/share/bash-completion/completions/svctl (the .deb does); or
# `source` this file. Service names come from `svctl status` (every service and
# instance pyinit supervises), else from the service directories.

_svctl_services()
{
    local names
    names=$(svctl status 2>/dev/null | sed -n 's/^[a-z]*: \([^: ]*\): .*/\1/p')
    if [ -z "$names" ]; then
        local dir IFS=:
        for dir in ${PYINIT_SERVICE_DIR:-/etc/service:/etc/services.d}; do
            [ -d "$dir" ] && names="$names $(cd "$dir" && printf '%s ' *)"
        done
    fi
    printf '%s\n' $names
}

_svctl()
{
    local cur prev words cword i command=""
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="status up down once pause cont hup alarm interrupt quit 1 2 term
        kill exit start stop restart reload try-restart force-stop force-reload
        force-restart force-shutdown shutdown check tree rescan shutdown-container
        logs scale list run"
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -w|--run-dir) ((i++)) ;;
            -*) ;;
            *) command=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $prev in
        --run-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        -w|-n|--lines|--exit-code) return ;;
    esac
    if [ -z "$command" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-v -w --run-dir --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi
    case $command in
        status|s|list)
            [[ $cur == -* ]] && { COMPREPLY=($(compgen -W "-l --long --json" -- "$cur")); return; } ;;
        tree)
            [[ $cur == -* ]] && { COMPREPLY=($(compgen -W "--json" -- "$cur")); return; } ;;
        logs)
            [[ $cur == -* ]] && { COMPREPLY=($(compgen -W "-f -n" -- "$cur")); return; } ;;
        shutdown-container)
            COMPREPLY=($(compgen -W "--exit-code" -- "$cur")); return ;;
        rescan) return ;;
    esac
    COMPREPLY=($(compgen -W "$(_svctl_services)" -- "$cur"))
}
complete -F _svctl svctl
