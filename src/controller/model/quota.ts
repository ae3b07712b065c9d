/**
 * Quota arithmetic on line items, pure: the unit of each key, parsing `key=value` as the CLI and API take it
 * (`vm.memory=2GiB`, `vm.count=4`), formatting values for people, and the sums and comparisons carving and
 * reservation need. Values are numbers in the key's base unit: bytes for memory and disk keys, a count otherwise.
 */
import { BosonError } from '../../common/index.ts';
import type { Limits, QuotaItem, QuotaUnit } from './schemas.ts';

/** The well-known keys and their units; any other key is custom (a count unless given in bytes). */
export const QUOTA_KEYS: Record<string, QuotaUnit> = {
  'vm.count': 'count',
  'vm.cpu': 'count',
  'vm.memory': 'bytes',
  'disk.capacity': 'bytes',
};

const BYTE_SUFFIX: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

const KEY = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;

/** The unit of `key`: the well-known key's, else bytes when the value was given with a byte suffix. */
export function unitOf(key: string, hadByteSuffix = false): QuotaUnit {
  return QUOTA_KEYS[key] ?? (hadByteSuffix ? 'bytes' : 'count');
}

/** Parses one `key=value` (value: a number, with a byte suffix for bytes keys: 512MiB, 2GiB, 10G). */
export function parseQuotaItem(text: string): QuotaItem {
  const eq = text.indexOf('=');
  const key = eq < 0 ? '' : text.slice(0, eq).trim();
  const raw = eq < 0 ? '' : text.slice(eq + 1).trim();
  if (!KEY.test(key))
    throw new BosonError(
      'INVALID_ARGUMENT',
      `invalid quota item ${JSON.stringify(text)}: use key=value, e.g. vm.count=4 or vm.memory=2GiB`,
    );
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw);
  const suffix = (m?.[2] ?? '').toLowerCase();
  if (!m || !(suffix in BYTE_SUFFIX)) throw new BosonError('INVALID_ARGUMENT', `invalid value for ${key}: ${JSON.stringify(raw)}`);
  const unit = unitOf(key, suffix !== '');
  if (unit === 'count' && suffix !== '')
    throw new BosonError('INVALID_ARGUMENT', `${key} is a count: ${JSON.stringify(raw)} has a size suffix`);
  const value = Number(m[1]) * BYTE_SUFFIX[suffix]!;
  if (!Number.isFinite(value) || (unit === 'bytes' && !Number.isInteger(value)))
    throw new BosonError('INVALID_ARGUMENT', `invalid value for ${key}: ${JSON.stringify(raw)}`);
  return { key, value, unit };
}

/** A byte size such as 512MiB, 2GiB, 10G or 1000 (bytes); INVALID_ARGUMENT otherwise. */
export function parseByteSize(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const suffix = (m?.[2] ?? '').toLowerCase();
  const value = m && suffix in BYTE_SUFFIX ? Number(m[1]) * BYTE_SUFFIX[suffix]! : NaN;
  if (!Number.isInteger(value)) throw new BosonError('INVALID_ARGUMENT', `invalid ${what}: ${JSON.stringify(text)} (e.g. 512MiB, 2GiB)`);
  return value;
}

/** Formats a value for people: bytes as KiB/MiB/GiB/TiB when exact enough, counts as they are. */
export function formatQuotaValue(item: Pick<QuotaItem, 'value' | 'unit'>): string {
  if (item.unit !== 'bytes') return String(item.value);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = item.value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v}${units[i]}`;
}

/** `key=value` for each item, for tables. */
export function formatLimits(items: Limits): string {
  return items.map((i) => `${i.key}=${formatQuotaValue(i)}`).join(', ');
}

/**
 * Checks a list of items (one per key, units matching the well-known keys') and returns it sorted by key;
 * INVALID_ARGUMENT otherwise.
 */
export function normalizeLimits(items: Limits): Limits {
  const seen = new Set<string>();
  for (const i of items) {
    if (seen.has(i.key)) throw new BosonError('INVALID_ARGUMENT', `quota key ${i.key} is given twice`);
    seen.add(i.key);
    const known = QUOTA_KEYS[i.key];
    if (known && known !== i.unit) throw new BosonError('INVALID_ARGUMENT', `quota key ${i.key} is in ${known}, not ${i.unit}`);
    if (!(i.value >= 0) || !Number.isFinite(i.value)) throw new BosonError('INVALID_ARGUMENT', `invalid value for ${i.key}: ${i.value}`);
  }
  return [...items].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The items as a map of key to value. */
export function toMap(items: Limits): Map<string, QuotaItem> {
  return new Map(items.map((i) => [i.key, i]));
}

/** `a` + `sign` × `b`, per key (keys of both; a key that comes to 0 is left out: sums list what is held). */
export function addItems(a: Limits, b: Limits, sign: 1 | -1 = 1): Limits {
  const out = toMap(a.map((i) => ({ ...i })));
  for (const i of b) {
    const cur = out.get(i.key);
    const value = (cur?.value ?? 0) + sign * i.value;
    if (cur) cur.value = Math.max(0, round(value));
    else if (value > 0) out.set(i.key, { key: i.key, value: round(value), unit: i.unit });
  }
  return normalizeLimits([...out.values()].filter((i) => i.value > 0));
}

/** Rounds away float noise from fractional counts (vm.cpu=0.5). */
const round = (v: number): number => Math.round(v * 1e6) / 1e6;

/** A key that would go over: the key, its limit, what is used, and what was asked. */
export interface Shortfall {
  key: string;
  unit: QuotaUnit;
  limit: number;
  used: number;
  requested: number;
}

/** The first key of `cost` for which `used + cost > limit` (keys without a limit are not limited), or null. */
export function shortfall(limits: Limits, used: Limits, cost: Limits): Shortfall | null {
  const lim = toMap(limits);
  const use = toMap(used);
  for (const c of cost) {
    const l = lim.get(c.key);
    if (!l || c.value === 0) continue;
    const u = use.get(c.key)?.value ?? 0;
    if (round(u + c.value) > l.value) return { key: c.key, unit: l.unit, limit: l.value, used: u, requested: c.value };
  }
  return null;
}

/** The QUOTA_EXCEEDED error for a shortfall of `scope` (a project "t/p" or a tenant "t"), naming the key. */
export function quotaError(scope: string, what: 'project' | 'tenant', s: Shortfall, verb = 'needs'): BosonError {
  const f = (value: number): string => formatQuotaValue({ value, unit: s.unit });
  return new BosonError(
    'QUOTA_EXCEEDED',
    `quota exceeded: ${what} ${scope} ${verb} ${s.key}=${f(s.requested)} but has ${f(Math.max(0, s.limit - s.used))} of ${f(s.limit)} left`,
    { details: { scope, [what]: scope, key: s.key, limit: s.limit, used: s.used, requested: s.requested, unit: s.unit } },
  );
}
