/**
 * The naive baseline: one process, node:http and onnxruntime-node, nothing else. One request → read the
 * body → JSON.parse → one `session.run` → JSON answer, the way a first version of a model server is
 * written. It runs the model on its HTTP thread (no worker threads, no batching).
 *
 * Started by the bench as a child process: argv[2] is the model file, argv[3] the intra-op thread count.
 * It listens on 127.0.0.1 on a free port and sends { port } to the parent over IPC.
 *
 *   POST /predict  {"values": [5.1, 3.5, 1.4, 0.2]} (one row, or a list of rows) → {"values": [0]}
 */
import http from 'node:http';
import * as ort from 'onnxruntime-node';

const file = process.argv[2]!;
const intraOpNumThreads = Number(process.argv[3] ?? 1);
const session = await ort.InferenceSession.create(file, { intraOpNumThreads, interOpNumThreads: 1 });
const inputName = session.inputNames[0]!;
const outputName = session.outputNames[0]!;
const meta = session.inputMetadata[0] as { shape?: readonly (number | string)[] };
const rowShape = (meta.shape ?? []).slice(1).map(Number);
const rowSize = rowShape.reduce((a, b) => a * b, 1);

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let values: number[];
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { values: unknown };
      values = (body.values as unknown[]).flat(Infinity) as number[];
    } catch (err) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
      return;
    }
    const rows = values.length / rowSize;
    const input = new ort.Tensor('float32', Float32Array.from(values), [rows, ...rowShape]);
    session.run({ [inputName]: input }).then(
      (out) => {
        const t = out[outputName]!;
        const data = Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
        const text = JSON.stringify({ values: data });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message }));
      },
    );
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port });
});
process.on('disconnect', () => process.exit(0));
