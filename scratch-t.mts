import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, openSync } from 'node:fs';
import { PREJAIL_SCRIPT, prepareJail } from '/work/wt-sec12/src/vmm/prejail.ts';
const J = '/var/tmp/sec12dbg/run/vms/testjail';
rmSync(J, { recursive: true, force: true }); mkdirSync(J, { recursive: true });
const binds = await prepareJail(J, { uid: 999, gid: 999 }, true);
const p = spawn('unshare', ['--mount', '--propagation', 'slave', '--', 'sh', '-c', PREJAIL_SCRIPT, 'sh', J, '/etc/hostname', '/etc/hostname', '999', '999', ...binds, '--', '/usr/bin/sh', '-c', 'id; ls -la /dev/null /dev/net/tun; echo x > /dev/null && echo writable'], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
p.on('exit', (c) => console.log('exit', c));
