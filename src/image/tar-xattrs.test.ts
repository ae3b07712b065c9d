import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import tar from 'tar-stream';
import { makeTar, paxData } from './oci-writer.ts';
import { parsePaxRecords, XattrTap } from './tar-xattrs.ts';
import { tempDir } from './test-support.ts';

/** Every entry tar-stream emits, with the xattrs the tap paired with it (hex values), reading `t` in `chunk`-byte pieces. */
async function read(t: Buffer, chunk: number): Promise<string[]> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < t.length; i += chunk) pieces.push(t.subarray(i, i + chunk));
  const tap = new XattrTap();
  const ex = tar.extract();
  const done = pipeline(Readable.from(pieces), tap, ex);
  const out: string[] = [];
  for await (const e of ex) {
    const x = tap.entryXattrs('L', e.header);
    out.push(`${e.header.name}${x ? ' ' + [...x].map(([k, v]) => `${k}=${v.toString('hex')}`).join(',') : ''}`);
    e.resume();
  }
  await done;
  return out;
}

test('PAX records: SCHILY raw bytes, LIBARCHIVE base64 with a url-encoded name, size, a malformed tail', () => {
  const bin = Buffer.from([0, 0x80, 0xff, 0x0a, 0x3d]);
  const data = Buffer.concat([
    paxData({
      mtime: '1700000000.123456789',
      'SCHILY.xattr.user.b': bin,
      [`LIBARCHIVE.xattr.user.%25x%3D`]: Buffer.from('hi').toString('base64'),
      size: '123',
    }),
    Buffer.from('99 truncated'),
  ]);
  const r = parsePaxRecords(data);
  assert.deepEqual([...r.xattrs.keys()], ['user.b', 'user.%x=']);
  assert.deepEqual(r.xattrs.get('user.b'), bin);
  assert.equal(r.xattrs.get('user.%x=')!.toString(), 'hi');
  assert.equal(r.size, '123');
});

test('the tap pairs xattrs with the right entries in GNU tar archives (pax, global headers, GNU long names), any chunking', async () => {
  const dir = await tempDir();
  try {
    const src = path.join(dir, 'src');
    const long = 'd'.repeat(60) + '/' + 'n'.repeat(80);
    await fs.mkdir(path.join(src, 'd'.repeat(60)), { recursive: true });
    await fs.writeFile(path.join(src, long), 'long');
    await fs.writeFile(path.join(src, 'big'), Buffer.alloc(5000, 1));
    await fs.writeFile(path.join(src, 'plain'), 'p');
    await fs.symlink('t'.repeat(150), path.join(src, 'sym'));
    execFileSync('setfattr', ['-n', 'user.bin', '-v', '0x00ff800a3d', path.join(src, long)]);
    execFileSync('setfattr', ['-n', 'user.big', '-v', '0x01', path.join(src, 'big')]);
    execFileSync('setfattr', ['-n', 'user.d', '-v', '0x02', path.join(src, 'd'.repeat(60))]);
    const files = ['big', 'd'.repeat(60), 'plain', 'sym'];
    const posix = execFileSync('tar', [
      '-C',
      src,
      '--format=posix',
      '--xattrs',
      '--xattrs-include=*',
      '--pax-option=comment=global',
      '--sort=name',
      '-cf',
      '-',
      ...files,
    ]);
    const gnu = execFileSync('tar', ['-C', src, '--format=gnu', '--sort=name', '-cf', '-', ...files]);
    assert.ok(posix.includes('comment=global') && gnu.includes('././@LongLink'), 'the archives have a global header and GNU long names');
    const ours = await makeTar([
      { name: 'm', content: 'm', pax: { 'SCHILY.xattr.user.m': Buffer.from([0xc0]) } },
      { name: 'n', content: 'n' },
    ]);
    // tar-stream reads on past the zero blocks that end an archive, so the three can be read as one
    const all = Buffer.concat([gnu, posix, ours]);
    const expected = [
      'big',
      `${'d'.repeat(60)}/`,
      `${long}`,
      'plain',
      'sym',
      'big user.big=01',
      `${'d'.repeat(60)}/ user.d=02`,
      `${long} user.bin=00ff800a3d`,
      'plain',
      'sym',
      'm user.m=c0',
      'n',
    ];
    for (const chunk of [1, 7, 511, 512, 513, 4096, all.length]) assert.deepEqual(await read(all, chunk), expected, `chunks of ${chunk}`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
