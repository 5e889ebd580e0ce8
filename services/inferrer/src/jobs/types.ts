/** Batch jobs: the record kept in state.json, the item lines of items.ndjson, and the result lines. */

/**
 * RECEIVING while the upload is written and checked; QUEUED until a worker takes it; then RUNNING → one of
 * the final states (docs/jobs.md#states):
 *   SUCCEEDED  every item has outputs
 *   PARTIAL    some items have outputs, some failed
 *   FAILED     no item has outputs (each one failed), or the job could not go on (`error` says why)
 *   CANCELLED  cancelled before it ended (results so far are kept)
 */
export type JobState = 'RECEIVING' | 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'PARTIAL' | 'FAILED' | 'CANCELLED';

export const FINAL_STATES: ReadonlySet<JobState> = new Set(['SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED']);

/** The state a job ends in once every item has run: from its counts of items and failed items. */
export function finishedState(total: number, failed: number): 'SUCCEEDED' | 'PARTIAL' | 'FAILED' {
  if (failed === 0) return 'SUCCEEDED';
  return failed >= total ? 'FAILED' : 'PARTIAL';
}
export const ACTIVE_STATES: ReadonlySet<JobState> = new Set(['RECEIVING', 'QUEUED', 'RUNNING']);

export type JobFormat = 'ndjson' | 'csv' | 'zip' | 'tar';

export interface JobRecord {
  id: string;
  model: string;
  /** Pinned version, when the submission asked for one (else the model's default at the time of each item). */
  version?: number;
  state: JobState;
  format: JobFormat;
  /** rows: NDJSON/CSV rows sent as v1 `values`; images: files sent as multipart image predictions. */
  kind: 'rows' | 'images';
  /** Items in the job (rows or image files); malformed rows count, they fail on their own. */
  total: number;
  /** Items per result chunk (the unit written at once, by temp + rename). */
  chunkItems: number;
  chunks: number;
  inputBytes: number;
  /** Who submitted it: the API key (as `owner`) with one, else `ip:<address>` (quotas count per client). */
  client: string;
  /**
   * The API key it belongs to (`key:<name>`, or `key-sha256:<fingerprint>` for a key without a name): only
   * that key, and keys with the admin scope, see it. Absent for a job submitted without a key, or stored
   * before jobs had owners: while API keys are on, only admin keys see those (docs/jobs.md#who-sees-a-job).
   */
  owner?: string;
  /** The Inferrer receiving the input while RECEIVING (`<host>~<pid>`): once it is gone, the submission is a leftover. */
  receiver?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** Final counts (also derivable from the result chunk names while running). */
  done?: number;
  failed?: number;
  error?: { code: string; message: string };
}

/**
 * Who asks about jobs: `all` sees every job (an admin key; every client while the Inferrer runs without API
 * keys); otherwise only the jobs whose `owner` is `owner` (none when it is undefined).
 */
export type JobViewer = { all: true } | { all: false; owner: string | undefined };

/** One line of items.ndjson. */
export interface ItemLine {
  /** Item index, from 0, in input order. */
  i: number;
  /** Line in the submitted file (1-based), for rows. */
  line?: number;
  /** The row as JSON text (an array: one row; an object: one row per named input). */
  v?: string;
  /** A row that could not be read: the item fails with this error and is never sent. */
  err?: { code: string; message: string };
  /** Images: the entry's name in the archive and the extracted file, relative to the job folder. */
  name?: string;
  file?: string;
}

/** One line of the results, in input order. */
export interface ResultLine {
  index: number;
  line?: number;
  file?: string;
  model_version?: number;
  outputs?: unknown;
  error?: { code: string; message: string };
}

/** What GET /api/v1/jobs/{id} answers. */
export interface JobStatus {
  id: string;
  model: string;
  version: number | null;
  state: JobState;
  format: JobFormat;
  items: { total: number; done: number; succeeded: number; failed: number };
  /** Items finished per second since the job started. */
  rate: number | null;
  /** Seconds until it finishes at that rate. */
  eta_s: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error?: { code: string; message: string };
  results: string;
}
