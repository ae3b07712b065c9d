/**
 * The root disk builder that runs inside a user namespace (see userns.ts): `node userns-child <spec JSON>`, started
 * through unshare by a rootless image store. It flattens the layers the parent streams on stdin into the staging
 * tree, packs it with mkfs, removes the tree, and reports on stdout (JSON lines). It is an entry point of its own
 * (bundled as build/cli/userns-child.mjs), so it loads only the flattener and mkfs.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { BosonError, isBosonError } from '../common/index.ts';
import { flattenLayers, type LayerInput } from './flatten.ts';
import { makeRootFs } from './rootfs.ts';
import { FRAME, type ChildMessage, type ChildSpec } from './userns.ts';

const send = (m: ChildMessage): void => {
  process.stdout.write(`${JSON.stringify(m)}\n`);
};

/** The first errno code in an error's cause chain (ENOSPC, EACCES...). */
function errnoOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code;
  }
  return undefined;
}

/**
 * The error as the parent gets it. A character or block device node can never be created in a user namespace (the
 * kernel allows that mknod only to the real root), so its failure here becomes ROOTLESS_UNSUPPORTED.
 */
function report(err: unknown): ChildMessage {
  const d = isBosonError(err, 'TOOL_FAILED') ? err.details : undefined;
  if (d?.tool === 'mknod' && (d.nodeType === 'character-device' || d.nodeType === 'block-device')) {
    return {
      t: 'error',
      code: 'ROOTLESS_UNSUPPORTED',
      errno: 'EPERM',
      details: { ...d },
      message: `layer ${String(d.layer)}: entry "${String(d.entry)}" is a device node, which a rootless daemon cannot create (the kernel allows mknod only to the real root); run this image with a root daemon`,
    };
  }
  if (isBosonError(err)) return { t: 'error', code: err.code, message: err.message, details: { ...err.details }, errno: errnoOf(err) };
  return { t: 'error', code: 'INTERNAL', message: `root disk build: ${(err as Error).message ?? String(err)}`, errno: errnoOf(err) };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as ChildSpec;
  let current: PassThrough | null = null;
  // stdin: [type u8][length u32 BE][payload] frames, the data of the layer asked for last.
  let buf: Buffer = Buffer.alloc(0);
  process.stdin.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const type = buf[0];
      const payload = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      if (type === FRAME.DATA) {
        // Backpressure: stop reading stdin while the flattener has not taken what it got.
        if (current && !current.write(Buffer.from(payload))) {
          process.stdin.pause();
          current.once('drain', () => process.stdin.resume());
        }
      } else if (type === FRAME.END) {
        current?.end();
        current = null;
      } else if (type === FRAME.ABORT) {
        current?.destroy(new BosonError('INTERNAL', `layer aborted by the parent: ${payload.toString()}`));
        current = null;
      }
    }
  });
  process.stdin.on('end', () => current?.destroy(new BosonError('INTERNAL', 'the parent went away while sending a layer')));
  const layers: LayerInput[] = spec.layers.map((name, i) => ({
    name,
    open: () => {
      current = new PassThrough({ highWaterMark: 1 << 20 });
      send({ t: 'open', i });
      return current;
    },
  }));
  let result: ChildMessage;
  try {
    // The image's root is rootfs/ in the (0700) stage, so its "./" entry never sets the stage's own mode or owner.
    const rootfs = path.join(spec.stage, 'rootfs');
    mkdirSync(rootfs, { mode: 0o700 });
    await flattenLayers(layers, rootfs, { onProgress: (e) => send({ t: 'progress', e }) });
    send({ t: 'progress', e: { phase: 'mkfs', detail: spec.fstype } });
    result = { t: 'done', size: await makeRootFs(rootfs, spec.out, spec.fstype) };
  } catch (err) {
    result = report(err);
  } finally {
    // The tree's files belong to subordinate ids: only here can they be removed.
    rmSync(spec.stage, { recursive: true, force: true });
  }
  send(result);
  process.stdin.destroy();
}

await main();
