/**
 * IPv4 address management: CIDR arithmetic, overlap checks, picking a free subnet for a new network and a free
 * address in a network. Pure functions over numbers (an address is its uint32 value); the manager persists leases.
 */
import { BosonError } from '../../common/index.ts';

/** An IPv4 subnet: its base address (host bits zero) and prefix length. */
export interface Cidr {
  base: number;
  prefix: number;
}

/** Parses a dotted quad into its uint32 value, or undefined when it is not one. */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255 || (part.length > 1 && part.startsWith('0'))) return undefined;
    value = value * 256 + n;
  }
  return value;
}

/** Formats a uint32 as a dotted quad. */
export function formatIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** The netmask of a prefix length, as a uint32. */
function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Number of addresses in a subnet. */
export function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

/** The last (broadcast) address of a subnet. */
export function cidrLast(cidr: Cidr): number {
  return cidr.base + cidrSize(cidr) - 1;
}

/**
 * Parses "a.b.c.d/len" for a network subnet: INVALID_ARGUMENT when malformed, when host bits are set (the message
 * names the subnet that was probably meant) or when the prefix leaves no room for a gateway and a container
 * (/31 and /32) or is absurdly large (shorter than /8).
 */
export function parseSubnet(text: string): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim());
  const addr = m ? parseIPv4(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || addr === undefined || !(prefix >= 0 && prefix <= 32))
    throw new BosonError('INVALID_ARGUMENT', `invalid subnet ${text}: expected an IPv4 CIDR like 10.89.0.0/24`);
  if (prefix < 8 || prefix > 30)
    throw new BosonError('INVALID_ARGUMENT', `invalid subnet ${text}: the prefix length must be between /8 and /30`);
  const base = (addr & mask(prefix)) >>> 0;
  if (base !== addr) throw new BosonError('INVALID_ARGUMENT', `invalid subnet ${text}: it should be ${formatIPv4(base)}/${prefix}`);
  return { base, prefix };
}

/** Formats a subnet as "a.b.c.d/len". */
export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.base)}/${cidr.prefix}`;
}

/** True when `ip` is inside `cidr`. */
export function cidrContains(cidr: Cidr, ip: number): boolean {
  return (ip & mask(cidr.prefix)) >>> 0 === cidr.base;
}

/** True when two subnets share at least one address. */
export function cidrOverlap(a: Cidr, b: Cidr): boolean {
  const shorter = Math.min(a.prefix, b.prefix);
  return (a.base & mask(shorter)) >>> 0 === (b.base & mask(shorter)) >>> 0;
}

/** Parses any route destination ("default", "10.0.0.0/8", "192.168.1.7") into a Cidr, or undefined for default. */
export function parseRouteDst(dst: string): Cidr | undefined {
  if (dst === 'default') return undefined;
  const [addrText, lenText] = dst.split('/');
  const addr = parseIPv4(addrText!);
  if (addr === undefined) return undefined;
  const prefix = lenText === undefined ? 32 : Number(lenText);
  return { base: (addr & mask(prefix)) >>> 0, prefix };
}

/** Checks that `gateway` can be a network's gateway: inside the subnet, neither its network nor broadcast address. */
export function validateGateway(subnet: Cidr, gatewayText: string): number {
  const gw = parseIPv4(gatewayText);
  if (gw === undefined) throw new BosonError('INVALID_ARGUMENT', `invalid gateway ${gatewayText}: expected an IPv4 address`);
  if (!cidrContains(subnet, gw) || gw === subnet.base || gw === cidrLast(subnet)) {
    throw new BosonError('INVALID_ARGUMENT', `invalid gateway ${gatewayText}: it must be a host address inside ${formatCidr(subnet)}`);
  }
  return gw;
}

/**
 * Where subnets for networks created without --subnet come from: /24s in 10.89.0.0/16 … 10.127.0.0/16 (Podman's
 * habit, clear of Docker's 172.17+ and of most home and cloud networks).
 */
export const DEFAULT_POOL = { base: parseIPv4('10.89.0.0')!, end: parseIPv4('10.127.255.255')!, prefix: 24 };

/** The first /`prefix` subnet of the pool that overlaps none of `taken`; ADDRESS_EXHAUSTED when there is none. */
export function pickSubnet(taken: Cidr[], pool: { base: number; end: number; prefix: number } = DEFAULT_POOL): Cidr {
  const step = 2 ** (32 - pool.prefix);
  for (let base = pool.base; base + step - 1 <= pool.end; base += step) {
    const candidate = { base, prefix: pool.prefix };
    if (!taken.some((t) => cidrOverlap(t, candidate))) return candidate;
  }
  throw new BosonError(
    'ADDRESS_EXHAUSTED',
    `no free /${pool.prefix} subnet left in ${formatIPv4(pool.base)}–${formatIPv4(pool.end)} for a new network (give one with --subnet)`,
  );
}

/**
 * A free host address of `subnet`, not in `used` and not the gateway, searching upwards from just after `after`
 * and wrapping around, so that a released address is not handed out again at once (a stale ARP entry or DNS answer
 * then points nowhere rather than at the wrong container). ADDRESS_EXHAUSTED when the subnet is full.
 */
export function allocateAddress(subnet: Cidr, gateway: number, used: ReadonlySet<number>, after = 0): number {
  const first = subnet.base + 1;
  const last = cidrLast(subnet) - 1;
  const count = last - first + 1;
  const start = after >= first && after < last ? after + 1 : first;
  for (let i = 0; i < count; i++) {
    const candidate = start + i > last ? start + i - count : start + i;
    if (candidate !== gateway && !used.has(candidate)) return candidate;
  }
  throw new BosonError('ADDRESS_EXHAUSTED', `no free address left in ${formatCidr(subnet)}`);
}
