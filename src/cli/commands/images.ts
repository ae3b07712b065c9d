/**
 * The machine's images: `boson images` / `image ls`, `image import`, `image inspect`, `rmi` / `image rm`, `tag` /
 * `image tag`, `image prune`; through the daemon when one runs, else embedded (see ../machine.ts).
 */
import { statSync, createReadStream } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { RemoteImages } from '../../machine/client/index.ts';
import { machineClient } from '../target-machine.ts';
import { loadEmbedded } from '../embedded.ts';
import { localContext, type Image } from '../../machine/port/index.ts';
import { imageMachine } from '../image-machine.ts';
import { daemonAnswers, type ImageMachine } from '../machine.ts';
import { formatBytes, printJson, printTable, StatusLine } from '../output.ts';

/**
 * The images with what containers use known (for rmi and prune): the daemon's, or, without one, the image service
 * of a runtime embedded in this process (which only reads the container records).
 */
async function imagesWithContainers(): Promise<ImageMachine & { close(): Promise<void> }> {
  const client = machineClient();
  if (await daemonAnswers(client))
    return { images: new RemoteImages(client), remote: true, ctx: localContext(), close: async () => undefined };
  const { buildRuntime } = await loadEmbedded();
  const runtime = buildRuntime('embedded');
  return { images: runtime.imageService, remote: false, ctx: localContext(), close: () => runtime.close() };
}

function rows(images: Image[]): string[][] {
  const out: string[][] = [];
  for (const img of images) {
    const refs = img.references.length > 0 ? img.references : ['<none>:<none>'];
    for (const ref of refs) {
      const colon = ref.lastIndexOf(':');
      const slash = ref.lastIndexOf('/');
      const [repo, tag] = colon > slash ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, '<none>'];
      out.push([repo, tag, img.id.replace(/^sha256:/, '').slice(0, 12), img.created ?? '', formatBytes(img.size)]);
    }
  }
  return out;
}

async function listImages(flags: { json?: boolean; quiet?: boolean }): Promise<void> {
  const { images, ctx } = await imageMachine();
  const list = await images.list(ctx);
  if (flags.json) printJson(list);
  else if (flags.quiet) process.stdout.write(list.map((i) => i.id.replace(/^sha256:/, '').slice(0, 12) + '\n').join(''));
  else printTable(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows(list));
}

async function removeImages(refs: string[], flags: { force?: boolean; json?: boolean }): Promise<void> {
  const machine = await imagesWithContainers();
  try {
    const results = [];
    for (const ref of refs) {
      const r = await machine.images.remove(machine.ctx, ref, { force: flags.force });
      results.push({ reference: ref, ...r });
      if (!flags.json) {
        for (const u of r.untagged) process.stdout.write(`Untagged: ${u}\n`);
        if (r.deleted) process.stdout.write(`Deleted: ${r.deleted}\n`);
      }
    }
    if (flags.json) printJson(results);
  } finally {
    await machine.close();
  }
}

async function tagImage(source: string, target: string): Promise<void> {
  const { images, ctx } = await imageMachine();
  await images.tag(ctx, source, target);
}

async function inspectImages(refs: string[]): Promise<void> {
  const { images, ctx } = await imageMachine();
  const out = [];
  for (const ref of refs) out.push(await images.inspect(ctx, ref));
  printJson(out);
}

async function pruneImages(flags: { json?: boolean }): Promise<void> {
  const machine = await imagesWithContainers();
  try {
    const r = await machine.images.prune(machine.ctx);
    if (flags.json) printJson(r);
    else {
      for (const id of r.images) process.stdout.write(`Deleted image: ${id}\n`);
      process.stdout.write(
        `Deleted ${r.blobs.length} blobs, ${r.disks.length} root disks, ${r.partials.length} partial downloads\nTotal reclaimed space: ${formatBytes(r.bytes)}\n`,
      );
    }
  } finally {
    await machine.close();
  }
}

/**
 * `image import`: in this process, the store reads the source itself. Through a daemon, a directory (an OCI
 * layout) is named by its path, which the daemon reads on this same host; a file is sent as the request body.
 */
async function importImages(source: string, flags: { tag?: string; json?: boolean }): Promise<void> {
  const { images, ctx, remote } = await imageMachine();
  const status = new StatusLine();
  try {
    const onProgress = (e: { phase: string; current?: number; total?: number; detail?: string }): void =>
      status.update(`${e.phase}${e.detail ? ` ${e.detail}` : ''}${e.total ? ` ${e.current ?? 0}/${e.total}` : ''}`);
    let dir = !remote;
    if (remote) {
      try {
        dir = statSync(source).isDirectory();
      } catch {
        dir = true; // the daemon names what is missing, as the store would
      }
    }
    const imported = dir
      ? await images.import(ctx, { path: remote ? path.resolve(source) : source }, { tag: flags.tag, onProgress })
      : await images.import(ctx, { tar: createReadStream(source) }, { tag: flags.tag, onProgress });
    status.clear();
    if (flags.json) printJson(imported);
    else for (const img of imported) process.stdout.write(`Loaded image: ${img.references[0] ?? img.id}\n`);
  } finally {
    status.clear();
  }
}

/** Adds `images` and the `image` command group to the program. */
export function registerImageCommands(program: Command): void {
  program
    .command('images')
    .description('List local images')
    .option('--json', 'print as JSON')
    .option('-q, --quiet', 'only image IDs')
    .action(listImages);
  const image = program.command('image').description('Manage images');
  image
    .command('ls')
    .description('List local images')
    .option('--json', 'print as JSON')
    .option('-q, --quiet', 'only image IDs')
    .action(listImages);
  image
    .command('import')
    .description('Import an OCI image layout directory or a `docker save` tarball')
    .argument('<path>', 'OCI layout directory or docker-save .tar')
    .option('-t, --tag <ref>', 'tag the imported image with this reference')
    .option('--json', 'print the imported images as JSON')
    .action(importImages);
  image.command('inspect').description('Show images as JSON (record and config)').argument('<reference...>').action(inspectImages);
  for (const cmd of [program.command('rmi'), image.command('rm')]) {
    cmd
      .description('Remove images: a name is untagged; the image goes with its last name (refused while a container uses it)')
      .argument('<reference...>')
      .option('-f, --force', 'remove even if a container uses the image')
      .option('--json', 'print what was removed as JSON')
      .action(removeImages);
  }
  for (const cmd of [program.command('tag'), image.command('tag')]) {
    cmd
      .description('Give an image another name')
      .argument('<source>', 'image reference or id')
      .argument('<target>', 'new name[:tag]')
      .action(tagImage);
  }
  image
    .command('prune')
    .description('Remove images without names, and blobs, root disks and partial downloads nothing uses')
    .option('--json', 'print as JSON')
    .action(pruneImages);
}
