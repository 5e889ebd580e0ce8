/** Readers of nginx's stub_status, /proc/net/dev and nvidia-smi's CSV; the host collector on this machine. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostCollector, parseNetDev, parseNvidiaSmi } from '../src/collectors/host.ts';
import { parseStubStatus } from '../src/collectors/nginx.ts';

test('nginx stub_status', () => {
  const text = 'Active connections: 2 \nserver accepts handled requests\n 16 15 31 \nReading: 0 Writing: 1 Waiting: 1 \n';
  assert.deepEqual(parseStubStatus(text), { active: 2, accepted: 16, handled: 15, requests: 31, reading: 0, writing: 1, waiting: 1 });
  assert.throws(() => parseStubStatus('<html>404</html>'), /not an nginx stub_status/);
});

test('/proc/net/dev without loopback', () => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 123456    100    0    0    0     0          0         0    654321     90    0    0    0     0       0          0
`;
  assert.deepEqual(parseNetDev(text), [{ device: 'eth0', receive_bytes: 123456, transmit_bytes: 654321 }]);
});

test('nvidia-smi CSV (noheader, nounits)', () => {
  assert.deepEqual(parseNvidiaSmi('0, NVIDIA H100 80GB HBM3, 37, 1024, 81559\n'), [
    { index: '0', name: 'NVIDIA H100 80GB HBM3', utilization_ratio: 0.37, memory_used_bytes: 1024 * 1024 * 1024, memory_total_bytes: 81559 * 1024 * 1024 },
  ]);
});

test('the host collector reads this machine; a missing nvidia-smi means no GPUs, not an error', async () => {
  const h = new HostCollector('/', '/nonexistent/nvidia-smi');
  await h.collect();
  await h.collect();
  const s = h.status!;
  assert.ok(s.cpu_cores >= 1);
  assert.ok(s.cpu_usage_ratio >= 0 && s.cpu_usage_ratio <= 1);
  assert.ok(s.memory_available_bytes > 0 && s.memory_available_bytes <= s.memory_total_bytes);
  assert.ok(s.disk && s.disk.free_bytes <= s.disk.total_bytes && s.disk.total_bytes > 0);
  assert.deepEqual(s.gpus, []);
});
