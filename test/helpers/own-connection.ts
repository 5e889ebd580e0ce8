/** A JSON POST on a connection of its own (no agent), so a test can close it or hold its body back. */
import http from 'node:http';

export function postOnOwnConnection(base: string, path: string, body: string): http.ClientRequest {
  const u = new URL(base);
  return http.request({
    host: u.hostname,
    port: u.port,
    method: 'POST',
    path,
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
}
