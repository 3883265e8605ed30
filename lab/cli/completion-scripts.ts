// The scripts `mtless completion bash|zsh` prints. They hold no names: each
// Tab asks `mtless __complete CWORD WORD…` (lab/cli/completion.ts), so they
// follow the verb table and the running labs without being regenerated.

export const BASH_COMPLETION = `# bash completion for mtless (verbs, options, lab, node and pod names).
# Install: mtless completion bash > /etc/bash_completion.d/mtless
# or for this shell only: source <(mtless completion bash)
_mtless() {
  local cur=\${COMP_WORDS[COMP_CWORD]} out IFS=$'\\n'
  out=$("\${COMP_WORDS[0]}" __complete "$COMP_CWORD" "\${COMP_WORDS[@]}" 2>/dev/null) || return 0
  case $out in
    __files__) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
    __dirs__) COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null ;;
    *) COMPREPLY=($(compgen -W "$out" -- "$cur")) ;;
  esac
}
complete -F _mtless mtless
`;

export const ZSH_COMPLETION = `#compdef mtless
# zsh completion for mtless (verbs, options, lab, node and pod names).
# Install: mtless completion zsh > "\${fpath[1]}/_mtless" (then compinit),
# or for this shell only: source <(mtless completion zsh)
_mtless() {
  local -a out
  out=(\${(f)"$("\${words[1]}" __complete $((CURRENT - 1)) "\${words[@]}" 2>/dev/null)"})
  case $out[1] in
    __files__) _files ;;
    __dirs__) _files -/ ;;
    *) compadd -Q -a out ;;
  esac
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  _mtless "$@"
else
  compdef _mtless mtless
fi
`;
