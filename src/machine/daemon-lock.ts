/**
 * One daemon per run directory: an exclusive lock on `<runDir>/boson.pid`, held for the daemon's whole life.
 *
 * How: the pid file is opened by this process and `flock --exclusive --nonblock 3` from util-linux (a Debian "required" package that
 * setup installs anyway) is run with that open file as its fd 3. flock(2) locks belong to the open file
 * description, which the child shares with us, so the lock stays held by our descriptor after `flock` exits, and
 * the kernel drops it when the descriptor is closed: by release(), or by the kernel when the daemon dies in any
 * way (kill -9 included). Node opens files with O_CLOEXEC, so the QEMU processes the daemon starts do not inherit
 * the descriptor and cannot keep the lock alive after the daemon. Why not an O_EXCL pid file with a liveness
 * check: taking over a stale file (unlink, then create) races when two daemons find it stale at once (the second
 * unlinks the first's fresh file), and a pid alone can be reused; a kernel lock has neither problem.
 *
 * The file holds the owner's pid, so that a second daemon can name it. It is never unlinked while the lock is
 * held by us unless we are about to release it, and acquire() checks after locking that the path still names the
 * inode it locked (a daemon that unlinked the file between our open and our lock would otherwise leave us holding
 * a lock on a file nobody else can see); it retries otherwise.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, statSync, writeSync, constants } from 'node:fs';
import path from 'node:path';
import { BosonError } from '../common/index.ts';

/** A held daemon lock. */
export interface DaemonLock {
  /** `<runDir>/boson.pid`. */
  readonly path: string;
  /** True until release(). */
  held(): boolean;
  /** Empties the pid file and drops the lock (idempotent). */
  release(): void;
}

/** Runs flock on `fd` (as its fd 3): true when it took the lock, false when another holder has it. */
function tryFlock(fd: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', '75', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new BosonError(
          'TOOL_FAILED',
          err.code === 'ENOENT'
            ? 'flock (util-linux) is not installed: the daemon locks its pid file with it'
            : `flock on the daemon's pid file could not run: ${err.message}`,
          { cause: err },
        ),
      );
    });
    child.once('close', (code) => {
      if (code === 0) resolve(true);
      else if (code === 75)
        resolve(false); // the lock is taken
      else reject(new BosonError('TOOL_FAILED', `flock on the daemon's pid file failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}

/** The pid written in a pid file, or null. */
function readPid(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Takes the daemon lock of `runDir` (which must exist), or throws DAEMON_ALREADY_RUNNING naming the holder's pid.
 */
export async function acquireDaemonLock(runDir: string): Promise<DaemonLock> {
  return acquireFileLock(
    path.join(runDir, 'boson.pid'),
    (pid, file) => `another Boson daemon${pid ? ` (pid ${pid})` : ''} already runs on ${runDir} (it holds ${file})`,
  );
}

/**
 * The same lock on any pid file (whose directory must exist): the controller holds `<controller.db>.lock` while it
 * uses its SQLite file, and `boson controller migrate` takes it to copy the file. DAEMON_ALREADY_RUNNING, with the
 * message `busy` makes from the holder's pid, when another process holds it.
 */
export async function acquireFileLock(file: string, busy: (pid: number | null, file: string) => string): Promise<DaemonLock> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o644); // libuv adds O_CLOEXEC itself
    let locked = false;
    try {
      locked = await tryFlock(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (!locked) {
      closeSync(fd);
      // The holder writes its pid just after it locks: give it a moment if we came in between.
      let pid = readPid(file);
      for (let i = 0; pid === null && i < 20; i++) {
        await new Promise((r) => setTimeout(r, 50));
        pid = readPid(file);
      }
      throw new BosonError('DAEMON_ALREADY_RUNNING', busy(pid, file), { details: { pid, pidFile: file } });
    }
    const current = (() => {
      try {
        return statSync(file);
      } catch {
        return null;
      }
    })();
    const mine = fstatSync(fd);
    if (!current || current.ino !== mine.ino || current.dev !== mine.dev) {
      closeSync(fd); // the file we locked was unlinked by its previous owner meanwhile: lock the one at the path
      continue;
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    let open = true;
    return {
      path: file,
      held: () => open,
      release: () => {
        if (!open) return;
        open = false;
        try {
          ftruncateSync(fd, 0);
        } finally {
          closeSync(fd);
        }
      },
    };
  }
  throw new BosonError('INTERNAL', `could not lock ${file}: it kept being replaced`);
}
