/**
 * Importing a model by URL, the way the EOTDL processor fetches its models: the URL names a STAC item with
 * the MLM extension; its `mlm:model` asset (an ONNX file) is downloaded into a staging folder of the store
 * and published exactly like an upload (parsed, a session created, the item checked against the graph).
 *
 * URL-based model registration is how TorchServe was exploited (CVE-2023-43654), so: off unless
 * MODEL_IMPORT_ENABLED; only http(s) URLs whose host is in MODEL_IMPORT_ALLOWED_HOSTS; every address a
 * host resolves to is checked when the connection is made, and the connection pinned to it
 * (import-addresses.ts: public unicast only, unless MODEL_IMPORT_ALLOWED_CIDRS); redirects are followed by
 * hand, each hop checked the same way; the item and the asset are size-limited while they stream;
 * EOTDL_API_KEY goes only to those hosts.
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import { InferrerError } from '@inferrer/core';
import type { InferrerConfig } from './config.ts';
import { ImportAddresses } from './import-addresses.ts';
import type { Management, ModelDescription } from './management.ts';

const MAX_ITEM_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 5;

export interface ImportRequest {
  /** The STAC item's URL. */
  url: string;
  /** Upload metadata merged in (description, config, labels, make_default). */
  metadata?: Record<string, unknown>;
}

type Fetched = Awaited<ReturnType<typeof request>>;

export class ModelImporter {
  readonly #config: InferrerConfig;
  readonly #management: Management;
  readonly #addresses: ImportAddresses;

  constructor(config: InferrerConfig, management: Management) {
    this.#config = config;
    this.#management = management;
    this.#addresses = new ImportAddresses(config.modelImport.allowedCidrs);
  }

  /** Checks that `raw` is an http(s) URL on an allowed host; returns it parsed. */
  allowed(raw: string): URL {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new InferrerError('INVALID_REQUEST', `"${raw.slice(0, 200)}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InferrerError('IMPORT_HOST_NOT_ALLOWED', `only http and https URLs can be imported, not ${url.protocol}`, { url: raw.slice(0, 200) });
    }
    if (url.username || url.password) throw new InferrerError('IMPORT_HOST_NOT_ALLOWED', 'import URLs may not carry credentials', { host: url.host });
    const hosts = this.#config.modelImport.allowedHosts;
    const host = url.host.toLowerCase();
    if (!hosts.includes(host) && !hosts.includes(url.hostname.toLowerCase())) {
      throw new InferrerError('IMPORT_HOST_NOT_ALLOWED', `host ${host} is not in MODEL_IMPORT_ALLOWED_HOSTS`, { host, allowed: hosts });
    }
    return url;
  }

  async import(
    rawName: string,
    req: ImportRequest,
  ): Promise<{ created: boolean; model: ModelDescription; version: number; source: { item: string; asset: string } }> {
    if (!this.#config.modelImport.enabled)
      throw new InferrerError('IMPORT_DISABLED', 'importing models by URL is off; set MODEL_IMPORT_ENABLED=true and MODEL_IMPORT_ALLOWED_HOSTS');
    if (typeof req.url !== 'string') throw new InferrerError('INVALID_REQUEST', 'send {"url": "<STAC item URL>"}');
    const itemUrl = this.allowed(req.url);
    const { res: itemRes, url: finalItemUrl } = await this.#fetch(itemUrl);
    const itemText = await readLimited(itemRes, MAX_ITEM_BYTES, 'the STAC item');
    let item: Record<string, unknown>;
    try {
      item = JSON.parse(itemText) as Record<string, unknown>;
    } catch {
      throw new InferrerError('INVALID_STAC_ITEM', `${finalItemUrl.href.slice(0, 200)} is not JSON`);
    }
    const asset = modelAsset(item);
    const assetUrl = this.allowed(new URL(asset.href, finalItemUrl).href);
    const file = path.join(await this.#management.staging(rawName), 'model.onnx');
    try {
      const { res } = await this.#fetch(assetUrl);
      const limit = this.#config.maxModelBytes;
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > limit) {
        await res.body.dump().catch(() => {});
        throw new InferrerError('MODEL_TOO_LARGE', `the model asset is ${declared} bytes, more than the limit of ${limit} (MAX_MODEL_BYTES)`, {
          limit,
          got: declared,
        });
      }
      let size = 0;
      await pipeline(
        res.body,
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            size += chunk.length;
            cb(
              size > limit
                ? new InferrerError('MODEL_TOO_LARGE', `the model asset is larger than the limit of ${limit} bytes (MAX_MODEL_BYTES)`, { limit })
                : null,
              chunk,
            );
          },
        }),
        createWriteStream(file),
      ).catch((err: unknown) => {
        if (err instanceof InferrerError) throw err;
        throw new InferrerError('IMPORT_FETCH_FAILED', `the model asset could not be downloaded: ${(err as Error).message}`, {
          url: assetUrl.href.slice(0, 200),
        });
      });
      if (size === 0) throw new InferrerError('INVALID_MODEL', 'the model asset is empty');
    } catch (err) {
      await this.#management.discard(file);
      throw err;
    }
    const props = (item.properties ?? {}) as Record<string, unknown>;
    const description = typeof props.description === 'string' ? props.description.slice(0, 4096) : `imported from ${finalItemUrl.href.slice(0, 200)}`;
    const result = await this.#management.upload(rawName, file, { description, ...(req.metadata ?? {}), stac: item });
    return { ...result, source: { item: finalItemUrl.href, asset: assetUrl.href } };
  }

  /** GET with redirects followed by hand (each hop allow-listed), a deadline, and the API key for allowed hosts. */
  async #fetch(start: URL): Promise<{ res: Fetched; url: URL }> {
    let url = start;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers: Record<string, string> = {
        accept: 'application/json, application/geo+json, application/octet-stream;q=0.9, */*;q=0.5',
        'user-agent': 'inferrer-model-import',
      };
      if (this.#config.modelImport.apiKey) headers['x-api-key'] = this.#config.modelImport.apiKey;
      let res: Fetched;
      this.#addresses.checkLiteral(url);
      try {
        res = await request(url, {
          method: 'GET',
          headers,
          dispatcher: this.#addresses.agent,
          headersTimeout: this.#config.modelImport.timeoutMs,
          bodyTimeout: this.#config.modelImport.timeoutMs,
          maxRedirections: 0,
        } as Parameters<typeof request>[1]);
      } catch (err) {
        // The address check refuses inside the connection's lookup; its error comes back here.
        const refused = findInferrerError(err);
        if (refused) throw refused;
        throw new InferrerError('IMPORT_FETCH_FAILED', `${url.host} could not be reached: ${(err as { code?: string }).code ?? (err as Error).message}`, {
          url: url.href.slice(0, 200),
        });
      }
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
        await res.body.dump().catch(() => {});
        const location = String(res.headers.location);
        url = this.allowed(new URL(location, url).href);
        continue;
      }
      if (res.statusCode !== 200) {
        await res.body.dump().catch(() => {});
        throw new InferrerError('IMPORT_FETCH_FAILED', `${url.href.slice(0, 200)} answered ${res.statusCode}`, {
          url: url.href.slice(0, 200),
          upstreamStatus: res.statusCode,
        });
      }
      return { res, url };
    }
    throw new InferrerError('IMPORT_FETCH_FAILED', `more than ${MAX_REDIRECTS} redirects from ${start.href.slice(0, 200)}`);
  }
}

function findInferrerError(err: unknown): InferrerError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) if (e instanceof InferrerError) return e;
  return undefined;
}

/** The asset holding the model: role mlm:model, else an ONNX media type or .onnx href. */
function modelAsset(item: Record<string, unknown>): { href: string } {
  const assets = item.assets && typeof item.assets === 'object' ? (item.assets as Record<string, Record<string, unknown>>) : {};
  const list = Object.values(assets).filter((a) => a && typeof a.href === 'string');
  const pick =
    list.find((a) => Array.isArray(a.roles) && a.roles.includes('mlm:model')) ??
    list.find((a) => typeof a.type === 'string' && a.type.includes('onnx')) ??
    list.find((a) => String(a.href).split('?')[0]!.endsWith('.onnx'));
  if (!pick) throw new InferrerError('INVALID_STAC_ITEM', 'the STAC item has no model asset (an asset with role "mlm:model", or an .onnx href)');
  return { href: String(pick.href) };
}

async function readLimited(res: Fetched, limit: number, what: string): Promise<string> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body.dump().catch(() => {});
    throw new InferrerError('IMPORT_FETCH_FAILED', `${what} is ${declared} bytes, more than the limit of ${limit}`, { limit, got: declared });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.body.destroy();
      throw new InferrerError('IMPORT_FETCH_FAILED', `${what} is larger than the limit of ${limit} bytes`, { limit });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
