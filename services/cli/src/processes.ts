/**
 * Child processes of a local cluster: each one's output is shown line by line, marked with its name;
 * one that dies unexpectedly is started again with backoff.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Start again after an unexpected exit. */
  restart: boolean;
  /**
   * Standard input is a pipe from the launcher, and INFERRER_LAUNCHED=1 tells the service to stop when it
   * ends (@inferrer/telemetry stopWithLauncher): our Node services. nginx cannot, and gets none.
   */
  linked?: boolean;
}

export type LineSink = (name: string, line: string) => void;

export class ManagedProcess {
  readonly spec: ProcessSpec;
  #child: ChildProcess | undefined;
  #stopping = false;
  #restarts = 0;
  #startedAt = 0;
  readonly #sink: LineSink;
  /** Called after every (re)start with the new pid. */
  onStart: ((pid: number) => void) | undefined;

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
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => this.#sink(this.spec.name, line));
    }
    child.on('error', (err) => this.#sink('launcher', `${this.spec.name} could not start: ${err.message}`));
    child.on('exit', (code, signal) => {
      killGroup(child.pid);
      if (this.#child !== child) return;
      this.#child = undefined;
      if (this.#stopping) return;
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!this.spec.restart) {
        this.#sink('launcher', `${this.spec.name} exited (${how})`);
        return;
      }
      // Quick repeated crashes back off up to 10 s; a process that ran a while restarts at once.
      const ranMs = Date.now() - this.#startedAt;
      const delay = ranMs > 30_000 ? 200 : Math.min(10_000, 200 * 2 ** Math.min(this.#restarts, 6));
      this.#restarts++;
      this.#sink('launcher', `${this.spec.name} exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s`);
      setTimeout(() => {
        if (!this.#stopping) this.start();
      }, delay).unref();
    });
    if (child.pid !== undefined) this.onStart?.(child.pid);
  }

  /** Sends a signal without stopping supervision (a killed worker is restarted). */
  kill(signal: NodeJS.Signals): void {
    this.#child?.kill(signal);
  }

  /** Stops for good: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
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
