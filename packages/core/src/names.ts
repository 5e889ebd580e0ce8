import { InferrerError } from './errors.ts';

/** Model names: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Normalises a model name from a URL or form: `iris.onnx` and `iris` name the same model. Rejects anything
 * that could leave the store (`..`, slashes, NUL, empty, too long), and a name that would still end in
 * `.onnx` once stripped (`iris.onnx.onnx`): so every stored name maps to itself and every route that parses
 * a name twice (the Inferrer, then the store, then a modelhost) reaches the same model.
 */
export function parseModelName(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new InferrerError('INVALID_MODEL_NAME', 'the model name is empty', { got: raw === undefined ? null : String(raw) });
  }
  let name = raw;
  if (name.toLowerCase().endsWith('.onnx')) name = name.slice(0, -5);
  if (!MODEL_NAME.test(name) || name.includes('..')) {
    const shown = raw.length > 64 ? `${raw.slice(0, 64)}…` : raw;
    throw new InferrerError(
      'INVALID_MODEL_NAME',
      `model name ${JSON.stringify(shown)} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { got: shown, length: raw.length },
    );
  }
  if (name.toLowerCase().endsWith('.onnx')) {
    const shown = raw.length > 64 ? `${raw.slice(0, 64)}…` : raw;
    throw new InferrerError(
      'INVALID_MODEL_NAME',
      `model name ${JSON.stringify(shown)} is not allowed: a name may end in ".onnx" only once ("${name}" and "${name.slice(0, -5)}" would be the same model)`,
      {
        got: shown,
      },
    );
  }
  return name;
}

/** Versions are positive integers written in decimal. */
export function parseVersion(raw: unknown): number {
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw > 0) return raw;
  if (typeof raw === 'string' && /^[1-9]\d{0,8}$/.test(raw)) return Number(raw);
  throw new InferrerError('INVALID_MODEL_NAME', `version ${JSON.stringify(String(raw).slice(0, 32))} is not a positive integer`, {
    got: String(raw).slice(0, 32),
  });
}
