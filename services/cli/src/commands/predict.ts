/**
 * `inferrer predict <model> [values]`: one online prediction. Values as JSON (a row, a list of rows, or an
 * object keyed by input name), rows from a file (NDJSON arrays or CSV numbers), or image files.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { type Io, cell, table } from '../output.ts';
import { type Context, act, positiveInt } from './common.ts';

const IMAGE_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
};

/** Rows to predict on: more than this belongs in a batch job. */
const MAX_FILE_ROWS = 10_000;

export function parseValues(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`values must be JSON, e.g. '[5.1, 3.5, 1.4, 0.2]' (${(err as Error).message})`);
  }
}

/** NDJSON rows (JSON arrays) or CSV rows (numbers; a first line that is not numbers is a header). */
export async function readRows(file: string): Promise<unknown[]> {
  const text = await readFile(file, 'utf8');
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const csv = !lines[0]?.trimStart().startsWith('[');
  const rows: unknown[] = [];
  lines.forEach((line, i) => {
    if (csv) {
      const fieldsOf = line.split(',').map((f) => f.trim());
      const values = fieldsOf.map(Number);
      if (values.some((v, k) => Number.isNaN(v) || fieldsOf[k] === '')) {
        if (i === 0) return; // a header
        throw new Error(`${file} line ${i + 1}: not a row of numbers: ${line.slice(0, 80)}`);
      }
      rows.push(values);
      return;
    }
    try {
      rows.push(JSON.parse(line));
    } catch (err) {
      throw new Error(`${file} line ${i + 1}: ${(err as Error).message}`);
    }
  });
  if (rows.length === 0) throw new Error(`${file} has no rows`);
  if (rows.length > MAX_FILE_ROWS) throw new Error(`${file} has ${rows.length} rows: more than ${MAX_FILE_ROWS} belong in a batch job (inferrer jobs submit)`);
  return rows;
}

interface V1Answer {
  model_name: string;
  model_version: number;
  values?: unknown;
  outputs?: Record<string, unknown>;
  predictions?: { file?: string; classes?: { label: string; score: number }[]; detections?: { label: string; score: number; box: Record<string, number> }[] }[];
}

function printAnswer(io: Io, a: V1Answer): void {
  io.out(`${a.model_name} version ${a.model_version}`);
  if (a.predictions) {
    const rows: unknown[][] = [];
    for (const p of a.predictions) {
      for (const c of p.classes ?? []) rows.push([p.file ?? '', c.label, c.score, '']);
      for (const d of p.detections ?? [])
        rows.push([p.file ?? '', d.label, d.score, `${cell(d.box.x1)},${cell(d.box.y1)} – ${cell(d.box.x2)},${cell(d.box.y2)}`]);
      if (!p.classes?.length && !p.detections?.length) rows.push([p.file ?? '', '(nothing found)', '', '']);
    }
    const detection = a.predictions.some((p) => p.detections);
    io.out(
      table(detection ? ['file', 'label', 'score', 'box (x1,y1 – x2,y2)'] : ['file', 'label', 'score'], detection ? rows : rows.map((r) => r.slice(0, 3))),
    );
    return;
  }
  const outputs = a.outputs ?? { value: a.values };
  const names = Object.keys(outputs);
  const columns = names.map((n) => outputs[n]);
  // One table row per input row when every output has one entry per row; else one line per output.
  const n = Array.isArray(columns[0]) ? (columns[0] as unknown[]).length : -1;
  if (n >= 0 && columns.every((c) => Array.isArray(c) && c.length === n)) {
    io.out(
      table(
        ['row', ...names],
        Array.from({ length: n }, (_, r) => [r, ...columns.map((c) => (c as unknown[])[r])]),
      ),
    );
  } else {
    io.out(
      table(
        ['output', 'value'],
        names.map((k) => [k, outputs[k]]),
      ),
    );
  }
}

export function registerPredict(program: Command, ctx: Context): void {
  program
    .command('predict')
    .description('one prediction: JSON values, rows from a file, or image files')
    .argument('<model>', 'model name')
    .argument('[values]', "JSON: one row '[5.1, 3.5, 1.4, 0.2]', a list of rows '[[…], […]]', or an object keyed by input name", parseValues)
    .option('-f, --file <rows>', 'rows from a file: NDJSON (one JSON array per line) or CSV numbers (a header line is skipped)')
    .option('-i, --image <files...>', 'image files (JPEG, PNG, WebP, TIFF); several are one batch')
    .option('--version <n>', 'a model version (default: the default version, or the canary split)', positiveInt('--version'))
    .option('-a, --all', 'every output of the model, not just the first')
    .option('--top-k <n>', 'images: labels per image', positiveInt('--top-k'))
    .addHelpText(
      'after',
      `
Examples:
  inferrer predict iris '[5.1, 3.5, 1.4, 0.2]'
  inferrer predict iris '[[6.7, 2.5, 5.8, 1.8], [5.1, 3.5, 1.4, 0.2]]' --all
  inferrer predict iris --file rows.csv
  inferrer predict digits --image digit_7.png --top-k 3`,
    )
    .action(
      act(async (model: string, values: unknown, opts: { file?: string; image?: string[]; version?: number; all?: boolean; topK?: number }, cmd: Command) => {
        const io = ctx.io(cmd);
        const given = [values !== undefined, opts.file !== undefined, opts.image !== undefined].filter(Boolean).length;
        if (given !== 1) cmd.error('give exactly one of: JSON values, --file <rows>, --image <files…>', { exitCode: 2, code: 'inferrer.usage' });
        const params: Record<string, string | number | undefined> = { version: opts.version, outputs: opts.all ? 'all' : undefined, top_k: opts.topK };
        const route = `/api/v1/models/${encodeURIComponent(model)}/prediction`;
        let data: unknown;
        let headers: Record<string, string>;
        if (opts.image) {
          const form = new FormData();
          for (const f of opts.image)
            form.append(
              'file',
              new Blob([await readFile(f)], { type: IMAGE_TYPES[path.extname(f).toLowerCase()] ?? 'application/octet-stream' }),
              path.basename(f),
            );
          data = form;
          headers = {};
        } else {
          const v = opts.file ? await readRows(opts.file) : values;
          // A whole request body ({"values": …}) is taken as it is.
          data = JSON.stringify(v && typeof v === 'object' && !Array.isArray(v) && 'values' in v ? v : { values: v });
          headers = { 'content-type': 'application/json' };
        }
        const a = await ctx.client(cmd).request<V1Answer>('POST', route, { data, headers, params });
        if (io.json) io.out(a.text);
        else printAnswer(io, a.body);
        return 0;
      }),
    );
}
