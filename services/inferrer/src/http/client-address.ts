/**
 * The address the per-client limits count by (rate limit, connections, bodies still arriving). An IPv4
 * address is one client. An IPv6 client is usually given a whole /64 (a home line, a cloud instance), and
 * can send from any of its 2^64 addresses: counted one address at a time, each new address would bring a
 * fresh allowance. So an IPv6 address counts by its first CLIENT_IPV6_PREFIX bits (64 by default; 128
 * counts every address on its own). An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, from a dual-stack
 * socket) is the IPv4 client it is.
 */
import ipaddr from 'ipaddr.js';

/** Few distinct addresses talk to one Inferrer at a time; the cache is emptied when it grows past this. */
const CACHE_SIZE = 4096;

export class ClientAddresses {
  readonly #bits: number;
  readonly #cache = new Map<string, string>();

  /** `ipv6PrefixBits`: how many leading bits of an IPv6 address name its client (1 to 128). */
  constructor(ipv6PrefixBits: number) {
    this.#bits = ipv6PrefixBits;
  }

  /** The client an address belongs to: the IPv4 address, or the IPv6 prefix written as `2001:db8:1:2::/64`. */
  of(address: string | undefined): string {
    if (address === undefined) return 'unknown';
    // Plain IPv4 (the common case) as it is, without parsing.
    if (!address.includes(':')) return address;
    let client = this.#cache.get(address);
    if (client === undefined) {
      client = this.#client(address);
      if (this.#cache.size >= CACHE_SIZE) this.#cache.clear();
      this.#cache.set(address, client);
    }
    return client;
  }

  #client(address: string): string {
    if (!ipaddr.isValid(address)) return address;
    const ip = ipaddr.process(address);
    if (ip.kind() === 'ipv4' || this.#bits >= 128) return ip.toString();
    const parts = (ip as ipaddr.IPv6).parts.map((part, i) => {
      const kept = Math.min(16, Math.max(0, this.#bits - 16 * i));
      return kept === 0 ? 0 : part & (0xffff << (16 - kept)) & 0xffff;
    });
    return `${new ipaddr.IPv6(parts).toString()}/${this.#bits}`;
  }
}
