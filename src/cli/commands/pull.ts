/**
 * `boson pull`: images from OCI and Docker registries (`boson login` and `logout` are in login.ts).
 * Pull progress: one bar per layer on a terminal (cli-progress), plain lines otherwise, nothing but the reference
 * with --quiet, and one JSON event per line with --json (Docker's pull-stream shape: status, id, progressDetail).
 * cli-progress and the table printer are loaded only when progress is shown, so a quiet or cached pull starts fast.
 */
import type cliProgress from 'cli-progress';
import type { Command } from 'commander';
import type { ImageProgressListener } from '../../machine/port/index.ts';
import { imageMachine } from '../image-machine.ts';
import { pullRequest } from '../machine.ts';
import { formatBytes } from '../output.ts';

type ImageProgress = ImageProgressListener;

interface PullFlags {
  platform?: string;
  insecure?: boolean;
  quiet?: boolean;
  json?: boolean;
}

const short = (digest: string | undefined): string => (digest ?? '').replace(/^sha256:/, '').slice(0, 12);

/** A progress renderer for one pull: bars on a terminal, plain lines, JSON lines, or nothing. */
async function pullProgress(flags: PullFlags): Promise<{ onProgress: ImageProgress; stop(): void }> {
  // Warnings (e.g. extended attributes the staging filesystem refused) go to stderr even when quiet.
  const warn = (e: Parameters<ImageProgress>[0]): boolean =>
    e.phase === 'warning' && (process.stderr.write(`Warning: ${e.detail}\n`), true);
  if (flags.quiet) return { onProgress: (e) => void warn(e), stop: () => undefined };
  if (flags.json) {
    return {
      onProgress: (e) => {
        const status =
          {
            resolve: 'Resolving',
            download: 'Downloading',
            downloaded: 'Download complete',
            exists: 'Already exists',
            unpack: 'Extracting',
            mkfs: 'Building root disk',
            done: 'Root disk ready',
            pulled: 'Pulled',
          }[e.phase] ?? e.phase;
        const id = e.phase === 'download' || e.phase === 'downloaded' || e.phase === 'exists' ? short(e.detail) : undefined;
        process.stdout.write(
          JSON.stringify({
            status,
            ...(id ? { id } : {}),
            ...(e.total !== undefined ? { progressDetail: { current: e.current ?? 0, total: e.total } } : {}),
            ...(id ? {} : { detail: e.detail }),
          }) + '\n',
        );
      },
      stop: () => undefined,
    };
  }
  const tty = Boolean(process.stderr.isTTY);
  if (!tty) {
    const started = new Set<string>();
    return {
      onProgress: (e) => {
        const id = short(e.detail);
        if (warn(e)) return;
        if (e.phase === 'resolve') process.stderr.write(`Pulling ${e.detail}\n`);
        else if (e.phase === 'exists') process.stderr.write(`${id}: Already exists\n`);
        else if (e.phase === 'download' && !started.has(id)) {
          started.add(id);
          process.stderr.write(`${id}: Downloading ${formatBytes(e.total ?? 0)}\n`);
        } else if (e.phase === 'downloaded') process.stderr.write(`${id}: Pull complete\n`);
        else if (e.phase === 'mkfs') process.stderr.write(`Building the ${e.detail} root disk\n`);
      },
      stop: () => undefined,
    };
  }
  const { default: cliProgress } = await import('cli-progress');
  const multi = new cliProgress.MultiBar(
    {
      format: ' {id} [{bar}] {value_h}/{total_h} {state}',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      barsize: 30,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  const bar = (digest: string, total: number): cliProgress.SingleBar => {
    let b = bars.get(digest);
    if (!b) {
      b = multi.create(total, 0, { id: short(digest), state: 'Downloading', value_h: '0B', total_h: formatBytes(total) });
      bars.set(digest, b);
    }
    return b;
  };
  let note: cliProgress.SingleBar | undefined;
  const warnings: Array<Parameters<ImageProgress>[0]> = [];
  return {
    onProgress: (e) => {
      if (e.phase === 'warning')
        warnings.push(e); // printed below the bars, once they stop
      else if (e.phase === 'download' && e.detail)
        bar(e.detail, e.total ?? 0).update(e.current ?? 0, {
          state: 'Downloading',
          value_h: formatBytes(e.current ?? 0),
          total_h: formatBytes(e.total ?? 0),
        });
      else if ((e.phase === 'downloaded' || e.phase === 'exists') && e.detail) {
        bar(e.detail, e.total ?? 0).update(e.total ?? 0, {
          state: e.phase === 'exists' ? 'Already exists' : 'Pull complete',
          value_h: formatBytes(e.total ?? 0),
          total_h: formatBytes(e.total ?? 0),
        });
      } else if (e.phase === 'unpack' || e.phase === 'mkfs') {
        note ??= multi.create(1, 0, { id: 'root disk   ', state: '', value_h: '', total_h: '' });
        note.update(0, { state: e.phase === 'unpack' ? `Extracting ${e.current}/${e.total}` : `mkfs.${e.detail}` });
      } else if (e.phase === 'done') note?.update(1, { state: 'ready' });
    },
    stop: () => {
      multi.stop();
      for (const w of warnings) warn(w);
    },
  };
}

async function pullCommand(reference: string, flags: PullFlags): Promise<void> {
  const machine = await imageMachine();
  const progress = await pullProgress(flags);
  let result;
  try {
    const request = await pullRequest(machine, { reference, platform: flags.platform, ...(flags.insecure ? { insecure: true } : {}) });
    result = await machine.images.pull(machine.ctx, request, progress.onProgress);
  } finally {
    progress.stop();
  }
  if (flags.json)
    process.stdout.write(
      JSON.stringify({
        status: result.upToDate ? 'Image is up to date' : 'Downloaded newer image',
        reference: result.reference,
        digest: result.digest,
        image: result.image,
      }) + '\n',
    );
  else if (flags.quiet) process.stdout.write(`${result.reference}\n`);
  else {
    process.stderr.write(
      `Digest: ${result.digest}\nStatus: ${result.upToDate ? 'Image is up to date for' : 'Downloaded newer image for'} ${result.reference}\n`,
    );
    process.stdout.write(`${result.reference}\n`);
  }
}

/** The pull action with its flags, shared by `pull` and `image pull`. */
function definePull(cmd: Command): Command {
  return cmd
    .description('Pull an image from a registry (name, name:tag, host:port/ns/name:tag, name@sha256:…)')
    .argument('<reference>', 'image reference; short names are on Docker Hub (alpine = docker.io/library/alpine:latest)')
    .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image', 'linux/amd64')
    .option('--insecure', 'allow plain HTTP to this registry (also BOSON_INSECURE_REGISTRIES=host:port,...)')
    .option('-q, --quiet', 'print only the reference')
    .option('--json', 'print progress events and the result as JSON lines')
    .action(pullCommand);
}

/** Adds `pull` and `image pull`. */
export function registerPullCommands(program: Command): void {
  definePull(program.command('pull'));
  const image = program.commands.find((c) => c.name() === 'image');
  if (image) definePull(image.command('pull'));
}
