/**
 * Images on the modelhost: reading the multipart body of `POST /v1/models/:name/predict-images` (busboy,
 * limits enforced while it streams) and shaping the answer: FRACTAL's `values` (the model's first output, or
 * `?output=`, one row per image), the YOLO tutorial's `data` ([[label, score, [x1, y1, x2, y2]], …] per
 * image; [[label, score], …] for classifiers), a structured `predictions` list, and every raw output under
 * `outputs` with `?outputs=all` (or `?raw=true`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { type ImagePipelineSpec, InferrerError, type NamedTensors, httpStatusBody, rowsToJson } from '@inferrer/core';
import { type ClassScore, type Detection, type ImageTransform, classify, detect } from '@inferrer/runtime';

export interface ReceivedImage {
  /** The form field and file name it came with. */
  field: string;
  filename: string;
  bytes: Buffer;
}

export interface ImageFormLimits {
  maxFiles: number;
  maxBytes: number;
}

/** File fields taken as images; any other file field is refused. */
const IMAGE_FIELDS = new Set(['file', 'files', 'image', 'images', 'file[]', 'image[]']);

/**
 * Reads every image of a multipart/form-data body into memory, within the limits: from the request, or from
 * a group member's body (read already) as a stream with the member's headers.
 */
export function receiveImages(req: Readable & { headers: IncomingHttpHeaders }, limits: ImageFormLimits): Promise<ReceivedImage[]> {
  const type = String(req.headers['content-type'] ?? '');
  if (!type.startsWith('multipart/form-data')) {
    return Promise.reject(
      new InferrerError('UNSUPPORTED_MEDIA_TYPE', `send images as multipart/form-data (field "file"), not ${JSON.stringify(type || 'no content type')}`, {
        got: type,
      }),
    );
  }
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: { files: limits.maxFiles, fileSize: limits.maxBytes, fields: 16, parts: limits.maxFiles + 16, fieldSize: 64 * 1024 },
      });
    } catch (err) {
      reject(new InferrerError('INVALID_REQUEST', `the multipart body could not be read: ${(err as Error).message}`));
      return;
    }
    const images: ReceivedImage[] = [];
    let total = 0;
    let failed: InferrerError | undefined;
    const fail = (e: InferrerError): void => {
      failed ??= e;
    };
    bb.on('file', (rawField: string | undefined, stream, info) => {
      // A form that ends inside a file (truncated) errors the file's stream as well as the form: unheard,
      // that error would end the process, whatever the field (one that is skipped included).
      stream.on('error', (err: Error) => fail(new InferrerError('INVALID_REQUEST', `the multipart body could not be read: ${err.message}`)));
      // busboy gives no field name (undefined) for `name=""`.
      const field = rawField ?? '';
      if (!IMAGE_FIELDS.has(field)) {
        fail(new InferrerError('INVALID_REQUEST', `unexpected file field "${field.slice(0, 64)}": send images as "file"`, { field: field.slice(0, 64) }));
        stream.resume();
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => {
        total += c.length;
        if (total > limits.maxBytes)
          fail(new InferrerError('BODY_TOO_LARGE', `the images are larger than the limit of ${limits.maxBytes} bytes`, { limit: limits.maxBytes }));
        else chunks.push(c);
      });
      stream.on('limit', () =>
        fail(
          new InferrerError('BODY_TOO_LARGE', `image "${info.filename?.slice(0, 128)}" is larger than the limit of ${limits.maxBytes} bytes`, {
            limit: limits.maxBytes,
          }),
        ),
      );
      stream.on('end', () => {
        if (!failed) images.push({ field, filename: (info.filename ?? '').slice(0, 256), bytes: Buffer.concat(chunks) });
      });
    });
    bb.on('filesLimit', () =>
      fail(
        new InferrerError('TOO_MANY_IMAGES', `the request carries more than ${limits.maxFiles} images (MAX_IMAGES_PER_REQUEST)`, { limit: limits.maxFiles }),
      ),
    );
    bb.on('partsLimit', () =>
      fail(new InferrerError('TOO_MANY_IMAGES', `the form has too many parts (at most ${limits.maxFiles} images)`, { limit: limits.maxFiles })),
    );
    bb.on('error', (err: Error) => reject(failed ?? new InferrerError('INVALID_REQUEST', `the multipart body could not be read: ${err.message}`)));
    bb.on('close', () => {
      if (failed) return reject(failed);
      if (images.length === 0)
        return reject(new InferrerError('INVALID_REQUEST', 'the form has no image: send it as the file field "file" (several files make a batch)'));
      const empty = images.findIndex((i) => i.bytes.length === 0);
      if (empty >= 0) return reject(new InferrerError('INVALID_IMAGE', `image ${empty} ("${images[empty]!.filename}") is empty`, { image: empty }));
      resolve(images);
    });
    // A client that goes away mid-form ends the form too (pipe() alone would leave it waiting, its images held).
    req.once('error', (err: Error) => bb.destroy(err));
    req.once('close', () => {
      if (!req.readableEnded) bb.destroy(new Error('the client closed the connection'));
    });
    req.pipe(bb);
  });
}

export interface ImageAnswerOptions {
  model: string;
  version: number;
  uid: string;
  topK: number;
  raw: boolean;
  /** Output answered as `values` (FRACTAL's raw rows); the first output when absent. */
  output?: string;
  /** Every output under `outputs` too (as `?outputs=all` does for tabular models). */
  all?: boolean;
  scoreThreshold?: number;
  iouThreshold?: number;
}

const round = (v: number, digits = 4): number => Number(v.toFixed(digits));

/** The v1 answer for a batch of images. */
export function encodeImageAnswer(
  pipeline: ImagePipelineSpec,
  outputs: NamedTensors,
  order: readonly string[],
  images: readonly { filename: string; transform: ImageTransform }[],
  opts: ImageAnswerOptions,
): string {
  const task = pipeline.task;
  const input = pipeline.image!;
  const main = opts.output ?? order[0];
  if (main === undefined || !Object.hasOwn(outputs, main))
    throw new InferrerError('INVALID_REQUEST', `the model has no output '${String(main)}' (outputs: ${order.join(', ')})`, {
      expected: order,
      got: main ?? null,
    });
  let data: unknown[] = [];
  let predictions: Record<string, unknown>[] = images.map((im) => ({ file: im.filename, width: im.transform.width, height: im.transform.height }));
  if (task?.kind === 'classification') {
    const rows: ClassScore[][] = classify(outputs[task.output]!, task, opts.topK);
    data = rows.map((r) => r.map((c) => [c.label, round(c.score)]));
    predictions = predictions.map((p, i) => ({ ...p, classes: rows[i]!.map((c) => ({ label: c.label, index: c.index, score: round(c.score, 6) })) }));
  } else if (task?.kind === 'detection') {
    const spec = {
      ...task,
      ...(opts.scoreThreshold !== undefined ? { scoreThreshold: opts.scoreThreshold } : {}),
      ...(opts.iouThreshold !== undefined ? { iouThreshold: opts.iouThreshold } : {}),
    };
    const rows: Detection[][] = detect(
      outputs[task.output]!,
      spec,
      images.map((i) => i.transform),
      { width: input.width, height: input.height },
    );
    data = rows.map((r) => r.map((d) => [d.label, round(d.score, 3), d.box]));
    predictions = predictions.map((p, i) => ({
      ...p,
      detections: rows[i]!.map((d) => ({
        label: d.label,
        index: d.index,
        score: round(d.score, 6),
        box: { x1: d.box[0], y1: d.box[1], x2: d.box[2], y2: d.box[3] },
      })),
    }));
  }
  let out = `{"http_status":${JSON.stringify(httpStatusBody(200))},"model_name":${JSON.stringify(opts.model)},"model_version":${opts.version},"uid":${JSON.stringify(opts.uid)}`;
  out += `,"task":${JSON.stringify(task?.kind ?? 'raw')},"values":${rowsToJson(outputs[main]!)}`;
  if (task) out += `,"data":${JSON.stringify(images.length === 1 ? data[0] : data)},"predictions":${JSON.stringify(predictions)}`;
  if (opts.raw || opts.all || !task) {
    out += ',"outputs":{';
    out += order
      .filter((n) => outputs[n])
      .map((n) => `${JSON.stringify(n)}:${rowsToJson(outputs[n]!)}`)
      .join(',');
    out += '}';
  }
  return out + '}';
}
