/**
 * `inferrer completion`: a bash completion script (zsh: after `autoload bashcompinit && bashcompinit`),
 * generated from the command tree, so it never lists a command or option the CLI does not have.
 */
import type { Command } from 'commander';

/** Every command path ("", "models", "models push", …) with the words that may follow it. */
export function completionWords(program: Command): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const globals = program.options.map((o) => o.long).filter((l): l is string => l !== undefined);
  const walk = (cmd: Command, at: string): void => {
    const words = [
      ...cmd.commands.map((c) => c.name()),
      ...cmd.options.map((o) => o.long).filter((l): l is string => l !== undefined),
      ...(cmd === program ? [] : globals),
      '--help',
    ];
    out.set(at, [...new Set(words)]);
    for (const c of cmd.commands) walk(c, at ? `${at} ${c.name()}` : c.name());
  };
  walk(program, '');
  return out;
}

export function bashCompletion(program: Command): string {
  const cases = [...completionWords(program)].map(([at, words]) => `    "${at}") echo "${words.join(' ')}" ;;`).join('\n');
  return `# bash completion for inferrer: eval "$(inferrer completion)" (or save it under /etc/bash_completion.d/)
_inferrer_words() {
  case "$1" in
${cases}
  esac
}
_inferrer() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" at="" i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case " $(_inferrer_words "$at") " in *" $w "*) [[ $w != -* ]] && at="\${at:+$at }$w" ;; esac
  done
  COMPREPLY=($(compgen -W "$(_inferrer_words "$at")" -- "$cur"))
}
complete -o default -F _inferrer inferrer
`;
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a bash completion script: eval "$(inferrer completion)"')
    .action(() => {
      process.stdout.write(bashCompletion(program));
    });
}
