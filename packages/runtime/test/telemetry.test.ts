/**
 * ONNX Runtime 1.30's Linux build records usage telemetry for upload to Microsoft and leaves
 * /tmp/mat-debug-<pid>.log behind each process that creates a session. A process that loads models through
 * OnnxSession has it off; the same process loading ONNX Runtime on its own shows the test can see it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { IRIS } from './fixtures.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'inferrer-telemetry-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const url = (file: string): string => JSON.stringify(pathToFileURL(file).href);
const ORT = url(createRequire(import.meta.url).resolve('onnxruntime-node'));
const ONNX_SESSION = url(path.join(import.meta.dirname, '..', 'src', 'onnx-session.ts'));

/** Runs `code` in a fresh Node process without ORT_DISABLE_TELEMETRY; whether it left ONNX Runtime's telemetry log. */
function leavesTelemetryLog(code: string): boolean {
  const env = { ...process.env };
  delete env.ORT_DISABLE_TELEMETRY;
  const script = path.join(dir, `probe-${Math.random().toString(36).slice(2)}.mts`);
  writeFileSync(script, code);
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const pid = Number(r.stdout.trim());
  assert.ok(pid > 0, r.stdout);
  const log = path.join('/tmp', `mat-debug-${pid}.log`);
  const left = existsSync(log);
  rmSync(log, { force: true });
  return left;
}

test('sessions made by OnnxSession leave no ONNX Runtime telemetry behind', async (t) => {
  const raw = leavesTelemetryLog(
    `const m = await import(${ORT}); const ort = m.default ?? m; await ort.InferenceSession.create(${JSON.stringify(IRIS)}); console.log(process.pid);`,
  );
  if (!raw) return t.skip('this ONNX Runtime build records no telemetry (no /tmp/mat-debug-<pid>.log with it on)');
  const ours = leavesTelemetryLog(
    `const { OnnxSession } = await import(${ONNX_SESSION});
     const s = await OnnxSession.load(${JSON.stringify(IRIS)});
     await s.dispose(); console.log(process.pid);`,
  );
  assert.equal(ours, false, 'a session made through OnnxSession left /tmp/mat-debug-<pid>.log: telemetry was on');
});
