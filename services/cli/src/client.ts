/**
 * The CLI's HTTP client for one Inferrer (axios): the base URL and API key once, JSON answers, error bodies
 * turned into messages that name the code, and uploads streamed from files with progress events.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import axios, { type AxiosInstance, type AxiosProgressEvent, type AxiosResponse, isAxiosError } from 'axios';

export interface ClientOptions {
  url: string;
  apiKey?: string | undefined;
  /** Per request; 0: none (uploads, results). */
  timeoutMs?: number;
}

/** An answer the Inferrer refused (4xx/5xx), or one that never came. */
export class ClientError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  constructor(message: string, status?: number, code?: string) {
    super(message);
    this.name = 'ClientError';
    this.status = status;
    this.code = code;
  }
}

export interface Answer<T = any> {
  status: number;
  headers: Record<string, string | undefined>;
  body: T;
  /** The body as it came (lossless: 64-bit integers beyond 2^53 keep every digit). */
  text: string;
}

export class InferrerClient {
  readonly url: string;
  readonly apiKey: string | undefined;
  readonly #http: AxiosInstance;

  constructor(o: ClientOptions) {
    this.url = o.url.replace(/\/+$/, '');
    this.apiKey = o.apiKey;
    this.#http = axios.create({
      baseURL: this.url,
      headers: o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {},
      timeout: o.timeoutMs ?? 60_000,
      // Every status is an answer: the error body says more than axios' "Request failed with status code".
      validateStatus: () => true,
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
      // Our JSON may hold 64-bit integers and NaN tokens: parse it ourselves, where it is read.
      responseType: 'text',
      transitional: { silentJSONParsing: false },
      transformResponse: (data: unknown) => data,
    });
  }

  /** A request whose answer must be 2xx; anything else throws a ClientError naming the server's code. */
  async request<T = any>(
    method: string,
    route: string,
    init: {
      data?: unknown;
      headers?: Record<string, string>;
      params?: Record<string, string | number | undefined>;
      onUploadProgress?: (e: AxiosProgressEvent) => void;
      timeoutMs?: number;
    } = {},
  ): Promise<Answer<T>> {
    let res: AxiosResponse<string>;
    try {
      res = await this.#http.request<string>({
        method,
        url: route,
        data: init.data,
        headers: init.headers,
        params: init.params,
        onUploadProgress: init.onUploadProgress,
        ...(init.timeoutMs !== undefined ? { timeout: init.timeoutMs } : {}),
      });
    } catch (err) {
      throw this.#unreachable(err);
    }
    const body = parseBody(res.data);
    const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, v === undefined || v === null ? undefined : String(v)]));
    if (res.status >= 200 && res.status < 300) return { status: res.status, headers, body: body as T, text: res.data ?? '' };
    const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    const text = e?.message ?? (typeof body === 'string' && body ? body.slice(0, 300) : `status ${res.status}`);
    throw new ClientError(`${res.status}${e?.code ? ` ${e.code}` : ''}: ${text}`, res.status, e?.code);
  }

  get<T = any>(route: string, params?: Record<string, string | number | undefined>): Promise<Answer<T>> {
    return this.request<T>('GET', route, params ? { params } : {});
  }

  /** Streams a file as the request body (never read whole), with its length, reporting progress. */
  async upload<T = any>(
    method: string,
    route: string,
    file: string,
    headers: Record<string, string>,
    onProgress?: (sent: number, total: number) => void,
    params?: Record<string, string | number | undefined>,
  ): Promise<Answer<T>> {
    const size = (await stat(file)).size;
    return this.request<T>(method, route, {
      data: createReadStream(file),
      headers: { ...headers, 'content-length': String(size) },
      ...(params ? { params } : {}),
      timeoutMs: 0,
      ...(onProgress ? { onUploadProgress: (e: AxiosProgressEvent) => onProgress(e.loaded, size) } : {}),
    });
  }

  /** A streamed GET (results files). */
  async stream(route: string): Promise<NodeJS.ReadableStream> {
    let res: AxiosResponse<NodeJS.ReadableStream>;
    try {
      res = await this.#http.get<NodeJS.ReadableStream>(route, { responseType: 'stream', timeout: 0, transformResponse: undefined });
    } catch (err) {
      throw this.#unreachable(err);
    }
    if (res.status !== 200) {
      let text = '';
      for await (const chunk of res.data) text += chunk.toString();
      const e = (parseBody(text) as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ClientError(`${res.status}${e?.code ? ` ${e.code}` : ''}: ${e?.message ?? `status ${res.status}`}`, res.status, e?.code);
    }
    return res.data;
  }

  #unreachable(err: unknown): ClientError {
    if (isAxiosError(err)) {
      const code = err.code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
      if (code === 'ECONNREFUSED')
        return new ClientError(`nothing answers at ${this.url} (connection refused): start a cluster (inferrer start) or point --url / INFERRER_URL at one`);
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new ClientError(`cannot resolve the host of ${this.url} (${code})`);
      if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') return new ClientError(`${this.url} did not answer in time (${code})`);
      return new ClientError(`${this.url}: ${err.message}${code ? ` (${code})` : ''}`);
    }
    return new ClientError((err as Error).message);
  }
}

/** JSON when it is JSON, else the text. */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
