/**
 * Where an import may connect: an allow-listed host name proves nothing about the address it resolves to
 * (a name can point at 127.0.0.1, a cloud metadata service or the cluster's own network, and can change
 * between a check and the connection: DNS rebinding). So every address is checked, at the moment of
 * connecting, by the lookup of the connection itself:
 *
 * - every address a name resolves to must be public unicast (ipaddr.js ranges): loopback, private,
 *   link-local (169.254.169.254), unique-local (fd00:ec2::254), carrier-grade NAT (100.100.100.200),
 *   multicast, reserved and IPv4-in-IPv6 forms are refused, as are cloud metadata addresses that sit in
 *   public space, unless a range in MODEL_IMPORT_ALLOWED_CIDRS covers the address;
 * - the connection goes to the addresses that were checked (the lookup hands only those to the socket),
 *   so there is no second resolution to rebind;
 * - an IP literal in the URL (which sockets do not look up) is checked the same way before the request.
 *
 * Redirects go through the same agent, so each hop is checked too.
 */
import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent } from 'undici';
import { InferrerError } from '@inferrer/core';

/** Metadata services at public addresses (the rest are in refused ranges already). */
const METADATA_CIDRS = ['168.63.129.16/32'];

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

export class ImportAddresses {
  readonly #allowed: Cidr[];
  readonly #metadata: Cidr[];
  readonly agent: Agent;

  constructor(allowedCidrs: readonly string[]) {
    this.#allowed = allowedCidrs.map((c) => ipaddr.parseCIDR(c));
    this.#metadata = METADATA_CIDRS.map((c) => ipaddr.parseCIDR(c));
    this.agent = new Agent({ connect: { lookup: this.lookup } });
  }

  /** Refuses an address imports may not reach (IMPORT_HOST_NOT_ALLOWED naming the host, address and range). */
  check(host: string, address: string): void {
    let ip = ipaddr.parse(address);
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
    if (this.#allowed.some((c) => c[0].kind() === ip.kind() && ip.match(c))) return;
    const range = this.#metadata.some((c) => c[0].kind() === ip.kind() && ip.match(c)) ? 'cloud metadata' : ip.range();
    if (range === 'unicast') return;
    const shown = host === address ? address : `${host} resolves to ${address}, which is`;
    throw new InferrerError(
      'IMPORT_HOST_NOT_ALLOWED',
      `${shown} ${range === 'cloud metadata' ? 'a cloud metadata address' : `in a ${range} range`}: imports reach public addresses only, unless MODEL_IMPORT_ALLOWED_CIDRS lists the range`,
      { host, address: ip.toString(), range },
    );
  }

  /** Checks a URL's host when it is an IP literal (sockets do not look those up). */
  checkLiteral(url: URL): void {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (net.isIP(host)) this.check(host, host);
  }

  /** The sockets' lookup: resolves, refuses the whole name if any address is refused, hands on only checked ones. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { family: options.family ?? 0, hints: options.hints ?? 0, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      try {
        if (addresses.length === 0) throw Object.assign(new Error(`${hostname} has no addresses`), { code: 'ENOTFOUND' });
        for (const a of addresses) this.check(hostname, a.address);
      } catch (e) {
        return callback(e as NodeJS.ErrnoException, '', 0);
      }
      if (options.all) (callback as unknown as (e: null, all: dns.LookupAddress[]) => void)(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}
