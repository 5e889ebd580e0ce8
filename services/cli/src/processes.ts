/**
 * Child processes of a local cluster: each one's output is shown line by line, marked with its name; one
 * that dies unexpectedly is started again with backoff, within limits:
 *   - exit code 78 (EXIT_CONFIG: a bad setting, a taken port) is never restarted: a restart cannot help;
 *   - a process that keeps dying soon after it starts (a crash loop) is given up after `restartLimit`
 *     restarts in a row.
 * Either way `onGiveUp` is told, with the process's last lines of standard error (its own explanation).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { EXIT_CONFIG } from '@inferrer/telemetry';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Start again after an unexpected exit. */
  restart: boolean;
  /** Restarts in a row, each after a run shorter than QUICK_EXIT_MS, before giving up (default 5). */
  restartLimit?: number;
  /**
   * Standard input is a pipe from the launcher, and INFERRER_LAUNCHED=1 tells the service to stop when it
   * ends (@inferrer/telemetry stopWithLauncher): our Node services. nginx cannot, and gets none.
   */
  linked?: boolean;
}

export type LineSink = (name: string, line: string) => void;

/** Why a process was given up. */
export interface ProcessFailure {
  name: string;
  /** config: it exited with EXIT_CONFIG; crash-loop: it kept dying soon after starting; exit: it exited and restart is off. */
  reason: 'config' | 'crash-loop' | 'exit';
  code: number | null;
  signal: NodeJS.Signals | null;
  restarts: number;
  /** Its last lines of standard error, oldest first. */
  stderr: string[];
}

/** A run shorter than this counts towards the crash-loop limit; a longer one starts the count again. */
export const QUICK_EXIT_MS = 30_000;
const STDERR_LINES = 20;

export class ManagedProcess {
  readonly spec: ProcessSpec;
  #child: ChildProcess | undefined;
  #stopping = false;
  #restarts = 0;
  #quickExits = 0;
  #startedAt = 0;
  #stderr: string[] = [];
  readonly #sink: LineSink;
  /** Called after every (re)start with the new pid. */
  onStart: ((pid: number) => void) | undefined;
  /** Called once when the process is given up (see the module comment). */
  onGiveUp: ((failure: ProcessFailure) => void) | undefined;

  constructor(spec: ProcessSpec, sink: LineSink) {
    this.spec = spec;
    this.#sink = sink;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get restarts(): number {
    return this.#restarts;
  }

  start(): void {
    this.#startedAt = Date.now();
    // Its own process group: when it dies, whatever it started (nginx's workers) goes with it, and Ctrl-C
    // reaches only the launcher, which stops the services in order.
    const linked = this.spec.linked === true;
    const child = spawn(this.spec.command, this.spec.args, {
      env: linked ? { ...this.spec.env, INFERRER_LAUNCHED: '1' } : this.spec.env,
      cwd: this.spec.cwd,
      stdio: [linked ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    // Nothing is ever written to it; its end (this process gone) is the message. Errors writing to a
    // child that exited are not ours to report.
    child.stdin?.on('error', () => undefined);
    this.#child = child;
    this.#stderr = [];
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => this.#sink(this.spec.name, line));
    createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', (line) => {
      this.#stderr.push(line);
      if (this.#stderr.length > STDERR_LINES) this.#stderr.shift();
      this.#sink(this.spec.name, line);
    });
    child.on('error', (err) => this.#sink('launcher', `${this.spec.name} could not start: ${err.message}`));
    child.on('exit', (code, signal) => {
      killGroup(child.pid);
      // Its last lines of output may still be in the pipe: read them (the 'close' event) before deciding,
      // but not for long (a grandchild holding the pipe open must not keep us waiting).
      const decide = (): void => this.#exited(child, code, signal);
      const timer = setTimeout(decide, 200);
      child.once('close', () => {
        clearTimeout(timer);
        decide();
      });
    });
    if (child.pid !== undefined) this.onStart?.(child.pid);
  }

  #exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    if (this.#stopping) return;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    const failure = (reason: ProcessFailure['reason']): ProcessFailure => ({
      name: this.spec.name,
      reason,
      code,
      signal,
      restarts: this.#restarts,
      stderr: [...this.#stderr],
    });
    if (code === EXIT_CONFIG) {
      this.#sink('launcher', `${this.spec.name} exited (${how}: a configuration error); not restarting it`);
      this.onGiveUp?.(failure('config'));
      return;
    }
    if (!this.spec.restart) {
      this.#sink('launcher', `${this.spec.name} exited (${how})`);
      this.onGiveUp?.(failure('exit'));
      return;
    }
    const ranMs = Date.now() - this.#startedAt;
    this.#quickExits = ranMs < QUICK_EXIT_MS ? this.#quickExits + 1 : 0;
    const limit = this.spec.restartLimit ?? 5;
    if (this.#quickExits > limit) {
      this.#sink('launcher', `${this.spec.name} exited (${how}) ${this.#quickExits} times in a row within ${QUICK_EXIT_MS / 1000} s of starting; giving up`);
      this.onGiveUp?.(failure('crash-loop'));
      return;
    }
    // Quick repeated crashes back off (0.4, 0.8, 1.6 … up to 10 s); a process that ran a while restarts at once.
    const delay = this.#quickExits === 0 ? 200 : Math.min(10_000, 200 * 2 ** this.#quickExits);
    this.#restarts++;
    this.#sink('launcher', `${this.spec.name} exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s (${this.#quickExits}/${limit} quick restarts)`);
    setTimeout(() => {
      if (!this.#stopping) this.start();
    }, delay).unref();
  }

  /** Sends a signal without stopping supervision (a killed worker is restarted). */
  kill(signal: NodeJS.Signals): void {
    this.#child?.kill(signal);
  }

  /** Stops for good: SIGTERM, then SIGKILL after `graceMs`. Resolves with how it ended. */
  async stop(graceMs = 10_000): Promise<'stopped' | 'killed' | 'not running'> {
    this.#stopping = true;
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return 'not running';
    return new Promise((resolve) => {
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(killed ? 'killed' : 'stopped');
      });
      child.kill('SIGTERM');
    });
  }
}

/** Kills what is left of a process group (children of a process that died). */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // nothing left
  }
}
