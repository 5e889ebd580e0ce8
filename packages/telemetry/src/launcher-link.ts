/**
 * A service started by the local launcher (`pnpm start`) stops when the launcher is gone, even when it
 * was killed with SIGKILL and could not stop its children: otherwise they would live on as orphans
 * holding their ports, and the next `pnpm start` would fail. The launcher gives each service a pipe as
 * standard input and never writes to it; the pipe ends when the launcher's process ends, however it
 * ends. Only under the launcher (INFERRER_LAUNCHED=1): in a container, standard input is /dev/null.
 */
export const LAUNCHED_ENV = 'INFERRER_LAUNCHED';

export function stopWithLauncher(stop: (reason: string) => void, env: NodeJS.ProcessEnv = process.env): void {
  if (env[LAUNCHED_ENV] !== '1') return;
  let stopped = false;
  const gone = (): void => {
    if (stopped) return;
    stopped = true;
    stop('the launcher exited');
  };
  process.stdin.on('end', gone);
  process.stdin.on('close', gone);
  process.stdin.on('error', gone);
  process.stdin.resume();
}
