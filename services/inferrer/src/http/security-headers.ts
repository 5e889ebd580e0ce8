/**
 * Security headers, all from helmet: the full set on pages and other express answers (with a CSP that does
 * not upgrade the page's own http requests to https, which blanked /docs on plain-http hosts), and a small
 * fixed set on prediction answers (JSON or tensors, never rendered), computed once from helmet itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

export const pageHeaders = helmet({
  crossOriginResourcePolicy: { policy: 'same-site' },
  contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
});

const apiHeaders = helmet({
  contentSecurityPolicy: false,
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: { policy: 'same-site' },
  originAgentCluster: false,
  referrerPolicy: { policy: 'no-referrer' },
  strictTransportSecurity: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xFrameOptions: { action: 'deny' },
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
});

/** The headers a helmet middleware sets, read once by running it against a recording response. */
function recorded(mw: (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader: (k: string, v: unknown) => void (headers[k.toLowerCase()] = String(v)),
    removeHeader: (k: string) => void delete headers[k.toLowerCase()],
    getHeader: (k: string) => headers[k.toLowerCase()],
  };
  mw({ headers: {} } as IncomingMessage, res as unknown as ServerResponse, () => undefined);
  return headers;
}

/** Headers every prediction answer carries (the answer is data: never cached, never framed, never sniffed). */
export const API_HEADERS: Readonly<Record<string, string>> = Object.freeze({ ...recorded(apiHeaders), 'cache-control': 'no-store' });
