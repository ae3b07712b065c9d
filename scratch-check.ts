import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { makeTestHost, runBoson, testDaemon } from './test/helpers.ts';
const host = await makeTestHost();
const daemon = testDaemon(() => host);
try {
  await daemon.start();
  await runBoson(host, ['run', '-d', '--name', 'x', 'busybox', 'sleep', '1000']);
  let r = await runBoson(host, ['suspend', '--json', 'x']);
  console.log(r.code, r.stdout.toString(), r.stderr);
  r = await runBoson(host, ['resume', '--json', 'x']);
  console.log(r.code, r.stdout.toString(), r.stderr);
  const vms = path.join(host.stateDir, 'run', 'vms');
  for (const d of await readdir(vms)) console.log(d, await readFile(path.join(vms, d, 'qemu.log'), 'utf8').catch((e) => String(e)));
  await runBoson(host, ['rm', '-f', 'x']);
} finally {
  await daemon.stop();
  await host.cleanup();
}
