/**
 * A consistent-hash ring (ketama-style), as nginx's `hash … consistent`: every worker owns 160 points on a
 * 32-bit circle; a key goes to the owner of the first point at or after the key's hash, and when that
 * worker is out (excluded, or marked failed), to the owner of the next point that is not. Removing a
 * worker moves only the keys it owned.
 */
import { crc32 } from 'node:zlib';

const POINTS_PER_TARGET = 160;

export class HashRing<T> {
  readonly #hashes: Uint32Array;
  readonly #owners: T[];

  constructor(targets: readonly T[], name: (t: T) => string) {
    const points: { hash: number; owner: T }[] = [];
    for (const t of targets) for (let i = 0; i < POINTS_PER_TARGET; i++) points.push({ hash: crc32(`${name(t)}-${i}`), owner: t });
    points.sort((a, b) => a.hash - b.hash);
    this.#hashes = Uint32Array.from(points, (p) => p.hash);
    this.#owners = points.map((p) => p.owner);
  }

  /** The owner of `key`: the first point at or after its hash whose owner `usable` accepts. */
  pick(key: string, usable: (t: T) => boolean): T | undefined {
    const n = this.#hashes.length;
    if (n === 0) return undefined;
    const h = crc32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    const seen = new Set<T>();
    for (let k = 0; k < n && seen.size < n; k++) {
      const owner = this.#owners[(lo + k) % n]!;
      if (seen.has(owner)) continue;
      seen.add(owner);
      if (usable(owner)) return owner;
    }
    return undefined;
  }
}
