import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (services/cli/src → ../../..). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEMO_MODELS_DIR = path.join(REPO_ROOT, 'models', 'demo');
export const TSX_IMPORT = ['--import', 'tsx'];

/**
 * Node's own flags for a service, before TSX_IMPORT: the same in the launcher, the images' CMD and the
 * Kubernetes manifests (test/deploy checks them).
 *
 * The Inferrer and the modelhosts hold request bodies of up to megabytes each for as long as a request is
 * in flight (hundreds of milliseconds under load), so they outlive the young generation and are promoted.
 * V8 starts the old generation small and sizes it from each full collection, and promoted buffers' memory
 * then triggered a full, marking collection every 15 or so ResNet-50 requests (0.6 MB each): 37 in 15 s
 * in the Inferrer, with its helper threads using more CPU than its main thread. Starting the old generation
 * at 128 MiB, there was none in a 60 s run, the Inferrer's CPU per request fell from 7.5 to 2.7 ms (v2
 * binary) and from 18.6 to 8.4 ms (v2 JSON), and its resident memory under that load rose from 149 to
 * 180 MB. It is a starting size, not a limit: V8 still collects as usual beyond it.
 */
export const NODE_FLAGS: Readonly<Record<'inferrer' | 'modelhost' | 'metrics' | 'balancer', readonly string[]>> = {
  inferrer: ['--initial-old-space-size=128'],
  modelhost: ['--initial-old-space-size=128'],
  metrics: [],
  balancer: [],
};
