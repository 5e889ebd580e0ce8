/** Puts the demo models (models/demo/*.onnx with their .json sidecars) into a store that lacks them. */
import { copyFile, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { ModelStore } from '@inferrer/model-store';
import { inspectModel } from '@inferrer/runtime';
import { DEMO_MODELS_DIR } from './paths.ts';

interface Sidecar {
  description?: string;
  labels?: string[];
}

export async function seedDemoModels(modelDir: string, from = DEMO_MODELS_DIR): Promise<string[]> {
  const store = new ModelStore(modelDir, { validate: (file) => inspectModel(file) });
  await store.init();
  const have = new Set((await store.list()).map((r) => r.name));
  const added: string[] = [];
  for (const file of (await readdir(from)).filter((f) => f.endsWith('.onnx')).sort()) {
    const name = file.slice(0, -5);
    if (have.has(name)) continue;
    const sidecar = JSON.parse(await readFile(path.join(from, `${name}.json`), 'utf8').catch(() => '{}')) as Sidecar;
    const staging = await store.stagingDir();
    const staged = path.join(staging, 'model.onnx');
    await copyFile(path.join(from, file), staged);
    await store.put(name, staged, {
      description: sidecar.description ?? `demo model ${name}`,
      ...(sidecar.labels ? { labels: sidecar.labels } : {}),
      config: { preload: true },
    });
    added.push(name);
  }
  return added;
}
