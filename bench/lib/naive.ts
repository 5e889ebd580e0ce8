/** Starts bench/naive-server.ts as a child process and waits for its port. */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { BENCH_DIR } from './paths.ts';

export interface NaiveServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export function startNaiveServer(modelFile: string, intraOpThreads: number): Promise<NaiveServer> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(path.join(BENCH_DIR, 'naive-server.ts'), [modelFile, String(intraOpThreads)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the naive server did not start in 30 s'));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the naive server exited (${code}) before listening`));
    });
    child.once('message', (msg: { port: number }) => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({
        url: `http://127.0.0.1:${msg.port}`,
        pid: child.pid!,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
  });
}
