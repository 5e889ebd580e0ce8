/**
 * Requests that reach a service in one turn of its event loop: the service's process is held stopped
 * (SIGSTOP) while the test sends them, so the kernel keeps them until it goes on (SIGCONT) and it reads them
 * all at once. Without it, a busy machine lets the service wake for the first request and send it on
 * before the next is written, and "arrive together" becomes "arrive one by one".
 */

/**
 * Stops `pid`, calls `send`, waits for `sent` (or `maxMs`), and lets the process go on; returns what `send`
 * returned. `sent`: the requests are in their sockets (a client request's 'finish'), or a short wait.
 */
export async function whileHeld<T>(pid: number, send: () => T, sent: (value: T) => Promise<unknown>, maxMs = 5000): Promise<T> {
  process.kill(pid, 'SIGSTOP');
  try {
    const value = send();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([sent(value), new Promise((r) => (timer = setTimeout(r, maxMs)))]);
    clearTimeout(timer);
    return value;
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}
