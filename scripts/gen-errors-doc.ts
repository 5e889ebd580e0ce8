import { ERROR_CODES, InferrerError, statusOf } from '@inferrer/core';
let out = `# Error codes

Every error Inferrer answers with carries a stable \`code\`. Match on the code, not on the message: messages
name the model, version and input involved and may get more precise over time. The HTTP status follows
from the code's kind (one table, \`packages/core/src/errors.ts\`); 429 and 503 answers carry \`Retry-After\`.

FRACTAL v1 answers wrap the error: \`{"http_status": {"code", "description", "name"}, "error": {"code", "message", "details"}}\`.
Between services (modelhost → nginx → Inferrer) errors travel as \`{"error": {"code", "kind", "message", "details"}}\`.

| code | HTTP | kind | meaning |
|---|---|---|---|
`;
for (const [code, spec] of Object.entries(ERROR_CODES)) {
  out += `| \`${code}\` | ${statusOf(new InferrerError(code as never, ''))} | ${spec.kind} | ${spec.summary} |\n`;
}
process.stdout.write(out);
