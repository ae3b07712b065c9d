/**
 * The local image store: `boson images` / `image ls`, `image import`, `image inspect`, `rmi` / `image rm`, `tag` /
 * `image tag`, `image prune`.
 */
import type { Command } from 'commander';
import { bosonPaths } from '../../common/index.ts';
import type { ImageRecord } from '../../image/index.ts';
import { openContainerRegistry, openImageStore } from '../../main/index.ts';
import { formatBytes, printJson, printTable, StatusLine } from '../output.ts';

function rows(images: ImageRecord[]): string[][] {
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
  const images = await openImageStore(bosonPaths().stateDir).list();
  if (flags.json) printJson(images);
  else if (flags.quiet) process.stdout.write(images.map((i) => i.id.replace(/^sha256:/, '').slice(0, 12) + '\n').join(''));
  else printTable(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows(images));
}

/** True when a container record (any state) uses the image: such an image is only removed with --force. */
async function usedByContainer(stateDir: string): Promise<(id: string) => Promise<boolean>> {
  const records = await openContainerRegistry(stateDir).list().catch(() => []);
  const ids = new Set(records.map((r) => r.imageId));
  return async (id) => ids.has(id);
}

async function removeImages(refs: string[], flags: { force?: boolean; json?: boolean }): Promise<void> {
  const { stateDir } = bosonPaths();
  const store = openImageStore(stateDir);
  const inUse = await usedByContainer(stateDir);
  const results = [];
  for (const ref of refs) {
    const r = await store.remove(ref, { force: flags.force, inUse });
    results.push({ reference: ref, ...r });
    if (!flags.json) {
      for (const u of r.untagged) process.stdout.write(`Untagged: ${u}\n`);
      if (r.deleted) process.stdout.write(`Deleted: ${r.deleted}\n`);
    }
  }
  if (flags.json) printJson(results);
}

async function tagImage(source: string, target: string): Promise<void> {
  await openImageStore(bosonPaths().stateDir).tag(source, target);
}

async function inspectImages(refs: string[]): Promise<void> {
  const store = openImageStore(bosonPaths().stateDir);
  const out = [];
  for (const ref of refs) {
    const img = await store.resolve(ref);
    out.push({ ...img, configBlob: await store.configBlob(img) });
  }
  printJson(out);
}

async function pruneImages(flags: { json?: boolean }): Promise<void> {
  const { stateDir } = bosonPaths();
  const r = await openImageStore(stateDir).prune({ inUse: await usedByContainer(stateDir) });
  if (flags.json) printJson(r);
  else {
    for (const id of r.images) process.stdout.write(`Deleted image: ${id}\n`);
    process.stdout.write(`Deleted ${r.blobs.length} blobs, ${r.disks.length} root disks, ${r.partials.length} partial downloads\nTotal reclaimed space: ${formatBytes(r.bytes)}\n`);
  }
}

/** Adds `images` and the `image` command group to the program. */
export function registerImageCommands(program: Command): void {
  program.command('images').description('List local images').option('--json', 'print as JSON').option('-q, --quiet', 'only image IDs').action(listImages);
  const image = program.command('image').description('Manage images');
  image.command('ls').description('List local images').option('--json', 'print as JSON').option('-q, --quiet', 'only image IDs').action(listImages);
  image
    .command('import')
    .description('Import an OCI image layout directory or a `docker save` tarball')
    .argument('<path>', 'OCI layout directory or docker-save .tar')
    .option('-t, --tag <ref>', 'tag the imported image with this reference')
    .option('--json', 'print the imported images as JSON')
    .action(async (source: string, flags: { tag?: string; json?: boolean }) => {
      const status = new StatusLine();
      try {
        const imported = await openImageStore(bosonPaths().stateDir).importPath(source, {
          tag: flags.tag,
          onProgress: (e) => status.update(`${e.phase}${e.detail ? ` ${e.detail}` : ''}${e.total ? ` ${e.current ?? 0}/${e.total}` : ''}`),
        });
        status.clear();
        if (flags.json) printJson(imported);
        else for (const img of imported) process.stdout.write(`Loaded image: ${img.references[0] ?? img.id}\n`);
      } finally {
        status.clear();
      }
    });
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
    cmd.description('Give an image another name').argument('<source>', 'image reference or id').argument('<target>', 'new name[:tag]').action(tagImage);
  }
  image.command('prune').description('Remove images without names, and blobs, root disks and partial downloads nothing uses').option('--json', 'print as JSON').action(pruneImages);
}
