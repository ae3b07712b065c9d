/**
 * Keeps the two definitions of the host⇄guest wire protocol equal: guest/init/proto.h (boson-init, C) and
 * protocol.ts (the host). Parses proto.h's object-like #defines and its enums, and compares every constant with
 * the TypeScript side in both directions: a constant missing on either side, or with another value, fails the
 * test with its name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../common/index.ts';
import * as protocol from './protocol.ts';

/** The constants of a C header: object-like #defines with a value, and each enum's members in order. */
export interface CConstants {
  defines: Map<string, number>;
  enums: Map<string, Map<string, number>>;
}

const TOKEN = /\s*(?:(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)[uUlL]*|'(\\.|[^'\\])'|([A-Za-z_]\w*)|(<<|>>|[-+*/%()|&^~]))/y;
const CHAR_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, '0': 0, '\\': 92, "'": 39 };
/** C's binary operators by precedence (higher binds tighter). */
const BINARY: Record<string, [number, (a: bigint, b: bigint) => bigint]> = {
  '*': [5, (a, b) => a * b],
  '/': [5, (a, b) => a / b],
  '%': [5, (a, b) => a % b],
  '+': [4, (a, b) => a + b],
  '-': [4, (a, b) => a - b],
  '<<': [3, (a, b) => a << b],
  '>>': [3, (a, b) => a >> b],
  '&': [2, (a, b) => a & b],
  '^': [1, (a, b) => a ^ b],
  '|': [0, (a, b) => a | b],
};

/**
 * Evaluates an integer constant expression of C: decimal, hex and octal literals (with u/l suffixes), character
 * literals, names of constants already known, parentheses, unary - + ~ and the binary arithmetic, shift and bitwise
 * operators. Throws on anything else (a cast, a string, an unknown name).
 */
export function evalCExpr(text: string, known: ReadonlyMap<string, number>): number {
  const toks: (string | bigint)[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length && text.slice(TOKEN.lastIndex).trim() !== '') {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (!m) throw new Error(`cannot read ${JSON.stringify(text)} at ${JSON.stringify(text.slice(at))}`);
    if (m[1] !== undefined) toks.push(BigInt(/^0[0-7]+$/.test(m[1]) ? `0o${m[1].slice(1)}` : m[1]));
    else if (m[2] !== undefined) toks.push(BigInt(m[2].length === 2 ? (CHAR_ESCAPES[m[2][1]!] ?? m[2].charCodeAt(1)) : m[2].charCodeAt(0)));
    else if (m[3] !== undefined) {
      const v = known.get(m[3]);
      if (v === undefined) throw new Error(`unknown name ${m[3]} in ${JSON.stringify(text)}`);
      toks.push(BigInt(v));
    } else toks.push(m[4]!);
  }
  let pos = 0;
  const fail = (): never => {
    throw new Error(`not an integer constant expression: ${JSON.stringify(text)}`);
  };
  const unary = (): bigint => {
    const t = toks[pos++];
    if (typeof t === 'bigint') return t;
    if (t === '-') return -unary();
    if (t === '+') return unary();
    if (t === '~') return ~unary();
    if (t === '(') {
      const v = binary(0);
      if (toks[pos++] !== ')') fail();
      return v;
    }
    return fail();
  };
  const binary = (minPrec: number): bigint => {
    let left = unary();
    for (;;) {
      const op = toks[pos];
      const entry = typeof op === 'string' ? BINARY[op] : undefined;
      if (!entry || entry[0] < minPrec) return left;
      pos++;
      left = entry[1](left, binary(entry[0] + 1));
    }
  };
  const value = binary(0);
  if (pos !== toks.length) fail();
  return Number(value);
}

/** Parses the constants of a C header. Throws, naming it, on a #define or enum value it cannot evaluate. */
export function parseCConstants(source: string): CConstants {
  const text = source
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/\/\/[^\n]*/g, '')
    .replace(/\\\n/g, ' ');
  const defines = new Map<string, number>();
  const enums = new Map<string, Map<string, number>>();
  const known = new Map<string, number>();
  for (const m of text.matchAll(/^[ \t]*#[ \t]*define[ \t]+(\w+)(\()?(.*)$/gm)) {
    const [, name, params, body] = m;
    if (params !== undefined || body!.trim() === '') continue; // function-like macros and include guards
    let value: number;
    try {
      value = evalCExpr(body!, known);
    } catch (e) {
      throw new Error(`#define ${name}: ${(e as Error).message}`);
    }
    defines.set(name!, value);
    known.set(name!, value);
  }
  const code = text.replace(/^[ \t]*#.*$/gm, '');
  for (const m of code.matchAll(/\benum\s*(\w*)\s*\{([^}]*)\}\s*(\w*)/g)) {
    const [, tag, body, declarator] = m;
    const isTypedef = /\btypedef\s+$/.test(code.slice(0, m.index));
    const name = tag || (isTypedef ? declarator : '') || '(anonymous)';
    const members = new Map<string, number>();
    let next = 0;
    for (const item of body!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const im = /^(\w+)\s*(?:=\s*([\s\S]+))?$/.exec(item);
      if (!im) throw new Error(`enum ${name}: cannot read member ${JSON.stringify(item)}`);
      let value = next;
      if (im[2] !== undefined) {
        try {
          value = evalCExpr(im[2], known);
        } catch (e) {
          throw new Error(`enum ${name}, ${im[1]}: ${(e as Error).message}`);
        }
      }
      members.set(im[1]!, value);
      known.set(im[1]!, value);
      next = value + 1;
    }
    enums.set(name!, members);
  }
  return { defines, enums };
}

/** proto.h's #defines and the protocol.ts constants that carry the same values. */
const DEFINES: Record<string, keyof typeof protocol> = {
  PROTO_VERSION: 'PROTOCOL_VERSION',
  FRAME_HDR: 'HEADER_SIZE',
  FRAME_MAX: 'MAX_PAYLOAD',
};

/**
 * proto.h's enums, the prefix of their members and the protocol.ts object that holds the same members without it
 * (C `T_HELLO` is `FrameType.HELLO`).
 */
const ENUMS: Record<string, { prefix: string; ts: keyof typeof protocol }> = {
  frame_type: { prefix: 'T_', ts: 'FrameType' },
  error_reason: { prefix: 'R_', ts: 'GuestErrorReason' },
  spec_tag: { prefix: 'S_', ts: 'SpecTag' },
};

/**
 * Enums whose members travel as text: only the names must match (C `MOUNT_9P` is `'9p'` in protocol.ts's list);
 * the numbers are boson-init's own.
 */
const NAME_ENUMS: Record<string, { prefix: string; ts: keyof typeof protocol }> = {
  mount_kind: { prefix: 'MOUNT_', ts: 'MOUNT_KINDS' },
};

/** A value as the message shows it: 135 (0x87). */
const show = (v: unknown): string => (typeof v === 'number' && v >= 16 ? `${v} (0x${v.toString(16)})` : String(v));

/** The differences between proto.h's constants and protocol.ts, one line each; empty when they are equal. */
function differences(c: CConstants): string[] {
  const out: string[] = [];
  const exports = protocol as Record<string, unknown>;
  for (const [cName, tsName] of Object.entries(DEFINES)) {
    const cValue = c.defines.get(cName);
    if (cValue === undefined) out.push(`proto.h has no #define ${cName} (protocol.ts: ${tsName} = ${show(exports[tsName])})`);
    else if (exports[tsName] !== cValue)
      out.push(`${cName} = ${show(cValue)} in proto.h, but ${tsName} = ${show(exports[tsName])} in protocol.ts`);
  }
  for (const name of c.defines.keys()) {
    if (!(name in DEFINES)) out.push(`proto.h defines ${name}, which protocol.ts does not have (or add it to DEFINES in this test)`);
  }
  for (const [enumName, { prefix, ts }] of Object.entries(ENUMS)) {
    const members = c.enums.get(enumName);
    const tsObject = (exports[ts] ?? {}) as Record<string, number>;
    if (!members) {
      out.push(`proto.h has no enum ${enumName} (protocol.ts: ${ts})`);
      continue;
    }
    for (const [cName, cValue] of members) {
      const key = cName.startsWith(prefix) ? cName.slice(prefix.length) : cName;
      if (!cName.startsWith(prefix)) out.push(`enum ${enumName}: ${cName} lacks the prefix ${prefix}`);
      if (!(key in tsObject)) out.push(`${cName} = ${show(cValue)} in proto.h, but protocol.ts has no ${ts}.${key}`);
      else if (tsObject[key] !== cValue)
        out.push(`${cName} = ${show(cValue)} in proto.h, but ${ts}.${key} = ${show(tsObject[key])} in protocol.ts`);
    }
    for (const [key, value] of Object.entries(tsObject)) {
      if (!members.has(prefix + key))
        out.push(`${ts}.${key} = ${show(value)} in protocol.ts, but proto.h's enum ${enumName} has no ${prefix}${key}`);
    }
  }
  for (const [enumName, { prefix, ts }] of Object.entries(NAME_ENUMS)) {
    const members = c.enums.get(enumName);
    const tsNames = (exports[ts] ?? []) as readonly string[];
    if (!members) {
      out.push(`proto.h has no enum ${enumName} (protocol.ts: ${ts})`);
      continue;
    }
    const cNames = [...members.keys()].map((n) => (n.startsWith(prefix) ? n.slice(prefix.length) : n).toLowerCase());
    for (const n of cNames)
      if (!tsNames.includes(n)) out.push(`proto.h has ${prefix}${n.toUpperCase()}, but protocol.ts's ${ts} has no '${n}'`);
    for (const n of tsNames)
      if (!cNames.includes(n))
        out.push(`protocol.ts's ${ts} has '${n}', but proto.h's enum ${enumName} has no ${prefix}${n.toUpperCase()}`);
  }
  for (const name of c.enums.keys()) {
    if (!(name in ENUMS) && !(name in NAME_ENUMS)) out.push(`proto.h has enum ${name}, which this test does not compare (add it to ENUMS)`);
  }
  // The other direction for whole constants: every numeric constant or table protocol.ts exports is in proto.h.
  const mapped = new Set<string>([
    ...Object.values(DEFINES),
    ...Object.values(ENUMS).map((e) => e.ts),
    ...Object.values(NAME_ENUMS).map((e) => e.ts),
  ]);
  for (const [name, value] of Object.entries(exports)) {
    const isNumberTable =
      typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'number');
    const isNameList = Array.isArray(value) && value.every((v) => typeof v === 'string');
    if ((typeof value === 'number' || isNumberTable || isNameList) && !mapped.has(name)) {
      out.push(`protocol.ts exports ${name}, which proto.h does not define (or add it to this test's tables)`);
    }
  }
  return out;
}

test('the C parser reads #defines and enums: hex, implicit increments, expressions, comments', () => {
  const c = parseCConstants(`
    #ifndef X_H
    #define X_H
    #define A 0x10 /* sixteen */
    #define B (1u << 4) // also sixteen
    #define C (A + B * 2 - 1)
    #define F(x) ((x) + 1)
    #define LONG \\
      3
    struct s { int a; };
    enum e { E0, E1, E5 = 5, E6, EH = 0x81, EH2, ECHR = 'a', EOCT = 010, EREF = E6 + A, };
    typedef enum { Z_A = ~0, Z_B } zed;
    enum packed { P1 = 1, P2 = 2 };
    #endif
  `);
  assert.deepEqual(Object.fromEntries(c.defines), { A: 16, B: 16, C: 47, LONG: 3 });
  assert.deepEqual(Object.fromEntries(c.enums.get('e')!), { E0: 0, E1: 1, E5: 5, E6: 6, EH: 0x81, EH2: 0x82, ECHR: 97, EOCT: 8, EREF: 22 });
  assert.deepEqual(Object.fromEntries(c.enums.get('zed')!), { Z_A: -1, Z_B: 0 });
  assert.deepEqual(Object.fromEntries(c.enums.get('packed')!), { P1: 1, P2: 2 });
  assert.throws(() => parseCConstants('#define S "text"'), /#define S/);
  assert.throws(() => parseCConstants('enum q { Q = UNKNOWN };'), /enum q, Q: unknown name UNKNOWN/);
});

test('guest/init/proto.h and src/guest/protocol.ts define the same protocol constants', () => {
  const c = parseCConstants(readFileSync(path.join(PACKAGE_ROOT, 'guest', 'init', 'proto.h'), 'utf8'));
  assert.ok(c.enums.size >= 4 && c.defines.size >= 3, 'read the constants of proto.h');
  assert.deepEqual(differences(c), []);
});

test('the comparison names a constant that differs, is missing on either side, or is new', () => {
  const real = parseCConstants(readFileSync(path.join(PACKAGE_ROOT, 'guest', 'init', 'proto.h'), 'utf8'));
  const copy = (): CConstants => ({ defines: new Map(real.defines), enums: new Map([...real.enums].map(([k, v]) => [k, new Map(v)])) });
  let c = copy();
  c.enums.get('frame_type')!.set('T_EXEC', 0x99);
  assert.match(differences(c).join('\n'), /T_EXEC = 153 \(0x99\) in proto.h, but FrameType.EXEC = 134 \(0x86\) in protocol.ts/);
  c = copy();
  c.enums.get('spec_tag')!.set('S_NEW', 99);
  assert.match(differences(c).join('\n'), /S_NEW = 99 \(0x63\) in proto.h, but protocol.ts has no SpecTag.NEW/);
  c = copy();
  c.enums.get('error_reason')!.delete('R_INTERNAL');
  assert.match(
    differences(c).join('\n'),
    /GuestErrorReason.INTERNAL = 7 in protocol.ts, but proto.h's enum error_reason has no R_INTERNAL/,
  );
  c = copy();
  c.defines.set('FRAME_MAX', 1 << 16);
  assert.match(differences(c).join('\n'), /FRAME_MAX = 65536 \(0x10000\) in proto.h, but MAX_PAYLOAD = 1048576 \(0x100000\)/);
  c = copy();
  c.defines.set('NEW_LIMIT', 1);
  c.enums.set('other', new Map());
  c.enums.get('mount_kind')!.delete('MOUNT_9P');
  const lines = differences(c).join('\n');
  assert.match(lines, /proto.h defines NEW_LIMIT/);
  assert.match(lines, /proto.h has enum other/);
  assert.match(lines, /protocol.ts's MOUNT_KINDS has '9p', but proto.h's enum mount_kind has no MOUNT_9P/);
});
