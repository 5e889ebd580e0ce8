import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (services/cli/src → ../../..). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEMO_MODELS_DIR = path.join(REPO_ROOT, 'models', 'demo');
export const TSX_IMPORT = ['--import', 'tsx'];
