/** `boson image import`, `boson images` / `boson image ls`: the local image store. */
import type { Command } from 'commander';
import { bosonPaths } from '../../common/index.ts';
import { ImageStore, type ImageRecord } from '../../image/index.ts';
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
  const images = await new ImageStore(bosonPaths().stateDir).list();
  if (flags.json) printJson(images);
  else if (flags.quiet) process.stdout.write(images.map((i) => i.id.replace(/^sha256:/, '').slice(0, 12) + '\n').join(''));
  else printTable(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows(images));
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
        const imported = await new ImageStore(bosonPaths().stateDir).importPath(source, {
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
}
