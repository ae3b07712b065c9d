#!/usr/bin/python3
"""
Boson through docker-py (Debian's python3-docker 5.0.3, API 1.41): self-checking groups of checks, run by
test/docker-py.test.ts. Run it with Debian's /usr/bin/python3 (the one python3-docker is installed for).

  checks.py --list            the group names, one a line
  checks.py GROUP...          runs those groups (all of them without names)

Every check prints one JSON line {"check", "ok", "error"}; the exit status is 1 when any check failed. A group
is a few checks that share the containers they boot (each micro-VM costs seconds under TCG); a check that fails
does not stop the next ones of its group. Every group removes what it made, whatever happened.

Environment: BOSON_DOCKER_SOCK (the daemon's Docker socket, required), BOSON_TEST_REGISTRY (host:port of a
loopback registry holding tools/box:v1, for the pull group).
"""
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import threading
import time
import traceback

import docker
import docker.errors
import docker.utils.socket

SOCK = os.environ.get('BOSON_DOCKER_SOCK', '')
REGISTRY = os.environ.get('BOSON_TEST_REGISTRY', '')
TAG = f'{os.getpid()}'

GROUPS = {}
failed = False


def group(fn):
    GROUPS[fn.__name__.replace('_', '-')] = fn
    return fn


def client(version=None):
    return docker.DockerClient(base_url=f'unix://{SOCK}', timeout=180, **({'version': version} if version else {}))


def emit(name, ok, error=''):
    global failed
    failed = failed or not ok
    print(json.dumps({'check': name, 'ok': ok, 'error': error}), flush=True)


class Group:
    """What one group made (removed at its end) and its checks."""

    def __init__(self, name):
        self.name = name
        self.c = client()
        self.containers, self.networks, self.volumes, self.images = [], [], [], []

    def check(self, name, fn):
        """Runs one check; returns its value (None when it failed)."""
        try:
            value = fn()
            emit(name, True)
            return value
        except Exception as e:  # noqa: BLE001 - every failure is a result
            emit(name, False, describe(e))
            return None

    def cleanup(self):
        for c in self.containers:
            try:
                self.c.api.remove_container(c, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except Exception as e:  # noqa: BLE001
                print(f'cleanup of container {c}: {e}', file=sys.stderr)
        for kind, items, remove in (('network', self.networks, self.c.api.remove_network), ('volume', self.volumes, self.c.api.remove_volume),
                                    ('image', self.images, self.c.api.remove_image)):
            for i in items:
                try:
                    remove(i)
                except docker.errors.NotFound:
                    pass
                except Exception as e:  # noqa: BLE001
                    print(f'cleanup of {kind} {i}: {e}', file=sys.stderr)

    def name_of(self, what):
        return f'py-{what}-{TAG}'

    def run(self, *args, **kwargs):
        """containers.run with detach=True, remembered for removal."""
        c = self.c.containers.run(*args, detach=True, **kwargs)
        self.containers.append(c.id)
        return c

    def create(self, *args, **kwargs):
        c = self.c.containers.create(*args, **kwargs)
        self.containers.append(c.id)
        return c


def describe(e):
    if isinstance(e, docker.errors.APIError):
        r = e.response
        req = r.request if r is not None else None
        where = f'{req.method} {req.path_url}' if req is not None else '?'
        body = req.body if req is not None and req.body else b''
        if isinstance(body, bytes):
            body = body[:300].decode('utf-8', 'replace')
        return f'{type(e).__name__}: {where} {body} -> {r.status_code if r is not None else "?"} {e.explanation}'
    if isinstance(e, AssertionError):
        return f'AssertionError: {e}'
    return ''.join(traceback.format_exception_only(type(e), e)).strip()


def eq(actual, expected, what):
    assert actual == expected, f'{what}: expected {expected!r}, got {actual!r}'


def ok(cond, what):
    assert cond, what


def raises(exc, fn, what):
    try:
        fn()
    except exc as e:
        return e
    raise AssertionError(f'{what}: expected {exc.__name__}, nothing was raised')


def wait_until(pred, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f'timed out after {seconds} s waiting for {what}')


# ---- system -----------------------------------------------------------------------------------------------------

@group
def system(g):
    g.check('system.ping', lambda: eq(g.c.ping(), True, 'ping'))

    def version():
        v = g.c.version()
        eq(v['Os'], 'linux', 'Os')
        ok(re.match(r'^1\.\d+$', v['ApiVersion']), f'ApiVersion {v["ApiVersion"]}')
        ok(float(v['MinAPIVersion']) <= 1.41, f'MinAPIVersion {v["MinAPIVersion"]} admits docker-py 5 (1.41)')
    g.check('system.version', version)

    def info():
        i = g.c.info()
        eq(i['OSType'], 'linux', 'OSType')
        eq(i['Driver'], 'boson-microvm', 'Driver')
        ok(isinstance(i['Containers'], int), 'Containers is a count')
    g.check('system.info', info)


# ---- containers -------------------------------------------------------------------------------------------------

@group
def run_foreground(g):
    name = g.name_of('fg')

    def run_output():
        out = g.c.containers.run('busybox', ['uname', '-r'], name=name, remove=True)
        ok(isinstance(out, bytes), f'run returns bytes, got {type(out)}')
        ok(b'boson' in out and out.endswith(b'\n'), f'uname -r of the guest kernel: {out!r}')
        eq(g.c.containers.list(all=True, filters={'name': name}), [], 'containers named after the removed run')
    g.check('containers.run_foreground', run_output)

    def run_error():
        e = raises(docker.errors.ContainerError, lambda: g.c.containers.run('busybox', ['sh', '-c', 'echo out; echo oops >&2; exit 3'], remove=True), 'a run that exits 3')
        eq(e.exit_status, 3, 'exit status')
        eq(e.stderr, b'oops\n', 'stderr carried by ContainerError')
    g.check('containers.run_error', run_error)



@group
def run_detach(g):
    name = g.name_of('detach')
    c = g.check('containers.run_detach', lambda: g.run('busybox', ['sleep', '600'], name=name, labels={'suite': 'docker-py', 'tag': TAG}))
    if c is None:
        return

    def state():
        c.reload()
        eq(c.status, 'running', 'status')
        eq(c.name, name, 'name')
        ok(c.attrs['State']['Pid'] > 0, 'State.Pid')
        eq(c.labels.get('suite'), 'docker-py', 'label')
        eq(c.image.id, g.c.images.get('busybox').id, 'image')
    g.check('containers.reload_running', state)

    def get_list():
        eq(g.c.containers.get(name).id, c.id, 'get by name')
        eq(g.c.containers.get(c.short_id).id, c.id, 'get by short id')
        eq([x.id for x in g.c.containers.list(filters={'label': f'tag={TAG}'})], [c.id], 'list by label')
        ok(c.id in [x.id for x in g.c.containers.list()], 'list (running)')
        raises(docker.errors.NotFound, lambda: g.c.containers.get('py-no-such-container'), 'get of a missing container')
    g.check('containers.get_list', get_list)

    def labels_and():
        # Several label filters must all match (compose 1.29 lists a service's containers this way).
        other = g.create('busybox', ['true'], labels={'suite': 'docker-py', 'tag': f'other{TAG}'})
        eq([x.id for x in g.c.containers.list(all=True, filters={'label': ['suite=docker-py', f'tag={TAG}']})], [c.id], 'list(all=True) by two labels')
        other.remove()
    g.check('containers.list_filter_labels_and', labels_and)

    def remove_running():
        e = raises(docker.errors.APIError, lambda: c.remove(), 'remove of a running container')
        eq(e.status_code, 409, 'status')
        ok('container is running' in str(e.explanation), e.explanation)
    g.check('containers.remove_running_refused', remove_running)

    def stop():
        c.stop(timeout=1)
        c.reload()
        eq(c.status, 'exited', 'status after stop')
        ok(c.attrs['State']['ExitCode'] in (137, 143), f'exit code {c.attrs["State"]["ExitCode"]}')
        c.remove()
        raises(docker.errors.NotFound, lambda: g.c.containers.get(c.id), 'get after remove')
    g.check('containers.stop_remove', stop)


@group
def create_start_wait(g):
    name = g.name_of('create')

    def lifecycle():
        c = g.create('busybox', ['sh', '-c', 'exit 42'], name=name)
        eq(c.status, 'created', 'status after create')
        c.start()
        eq(c.wait(), {'StatusCode': 42, 'Error': None}, 'wait')
        c.reload()
        eq((c.status, c.attrs['State']['ExitCode']), ('exited', 42), 'state')
        eq(c.wait(condition='not-running')['StatusCode'], 42, 'wait(condition=not-running) of an exited container')
        eq(c.attrs['Config']['Cmd'], ['sh', '-c', 'exit 42'], 'Config.Cmd')
    g.check('containers.create_start_wait', lifecycle)

    def env_workdir_user():
        c = g.create('busybox', ['sh', '-c', 'echo "$GREETING"; pwd; id -u; hostname'], environment={'GREETING': 'hello world'}, working_dir='/tmp', user='1000', hostname='pyhost')
        c.start()
        eq(c.wait()['StatusCode'], 0, 'exit')
        eq(c.logs(), b'hello world\n/tmp\n1000\npyhost\n', 'output')
    g.check('containers.create_env_workdir_user_hostname', env_workdir_user)


@group
def logs(g):
    def make():
        c = g.run('busybox', ['sh', '-c', 'echo out1; echo err1 >&2; echo out2; echo out3'])
        eq(c.wait()['StatusCode'], 0, 'exit')
        return c
    c = g.check('containers.logs_run', make)
    if c is None:
        return
    g.check('containers.logs_stdout', lambda: eq(c.logs(stdout=True, stderr=False), b'out1\nout2\nout3\n', 'stdout'))
    g.check('containers.logs_stderr', lambda: eq(c.logs(stdout=False, stderr=True), b'err1\n', 'stderr'))
    g.check('containers.logs_both', lambda: eq(sorted(c.logs().splitlines()), [b'err1', b'out1', b'out2', b'out3'], 'both streams'))
    g.check('containers.logs_tail', lambda: eq(c.logs(stdout=True, stderr=False, tail=2), b'out2\nout3\n', 'tail=2'))

    def timestamps():
        lines = c.logs(stdout=True, stderr=False, timestamps=True).decode().splitlines()
        eq(len(lines), 3, f'lines {lines}')
        for line, text in zip(lines, ['out1', 'out2', 'out3']):
            ok(re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ' + text + '$', line), f'timestamped line {line!r}')
    g.check('containers.logs_timestamps', timestamps)

    def follow():
        chunks = list(c.logs(stream=True, follow=True, stdout=True, stderr=False))
        eq(b''.join(chunks), b'out1\nout2\nout3\n', 'followed logs of an exited container (the stream ends)')
    g.check('containers.logs_follow_exited', follow)

    def since():
        eq(c.logs(since=int(time.time()) + 3600), b'', 'logs since an hour from now')
    g.check('containers.logs_since', since)


@group
def exec_run(g):
    c = g.check('containers.exec_target', lambda: g.run('busybox', ['sleep', '600']))
    if c is None:
        return

    def output():
        r = c.exec_run(['uname', '-r'])
        eq(r.exit_code, 0, 'exit code')
        ok(b'boson' in r.output, f'guest kernel: {r.output!r}')
    g.check('containers.exec_run_output', output)
    g.check('containers.exec_run_exit_code', lambda: eq(c.exec_run(['sh', '-c', 'exit 7']).exit_code, 7, 'exit code'))
    g.check('containers.exec_run_env_workdir', lambda: eq(c.exec_run(['sh', '-c', 'echo "$FOO"; pwd'], environment={'FOO': 'bar baz'}, workdir='/tmp').output, b'bar baz\n/tmp\n', 'output'))
    g.check('containers.exec_run_user', lambda: eq(c.exec_run(['id', '-u'], user='1000').output, b'1000\n', 'id -u'))
    g.check('containers.exec_run_demux', lambda: eq(c.exec_run(['sh', '-c', 'echo o; echo e >&2'], demux=True).output, (b'o\n', b'e\n'), 'demuxed output'))
    g.check('containers.exec_run_stream', lambda: eq(b''.join(c.exec_run(['sh', '-c', 'echo a; echo b'], stream=True).output), b'a\nb\n', 'streamed output'))

    def binary():
        r = c.exec_run(['sh', '-c', 'head -c 100000 /dev/zero | tr "\\000" "\\377"'])
        eq((r.exit_code, len(r.output), set(r.output)), (0, 100000, {255}), 'exit, length and bytes of 100000 0xff bytes')
    g.check('containers.exec_run_binary', binary)

    def inspect():
        eid = g.c.api.exec_create(c.id, ['sh', '-c', 'exit 4'])['Id']
        g.c.api.exec_start(eid)
        i = g.c.api.exec_inspect(eid)
        eq((i['ExitCode'], i['Running'], i['ContainerID']), (4, False, c.id), 'exec inspect')
    g.check('containers.exec_inspect', inspect)

    def stopped():
        c.kill()
        c.wait()
        e = raises(docker.errors.APIError, lambda: c.exec_run(['true']), 'exec in a stopped container')
        eq(e.status_code, 409, 'status')
        ok('is not running' in str(e.explanation), e.explanation)
    g.check('containers.exec_run_stopped_refused', stopped)


@group
def attach(g):
    def attach_socket():
        c = g.create('busybox', ['sh', '-c', 'read line; echo "got:$line"; echo bye >&2'], stdin_open=True)
        sock = c.attach_socket(params={'stdin': 1, 'stdout': 1, 'stderr': 1, 'stream': 1})
        c.start()
        sock._sock.sendall(b'hello\n')
        out, err = b'', b''
        for stream, data in docker.utils.socket.frames_iter(sock, False):
            if stream == docker.utils.socket.STDOUT:
                out += data
            else:
                err += data
        sock.close()
        eq((out, err), (b'got:hello\n', b'bye\n'), 'stdout and stderr through the attached socket')
        eq(c.wait()['StatusCode'], 0, 'exit')
        return c
    c = g.check('containers.attach_socket', attach_socket)
    if c is None:
        return
    g.check('containers.attach_logs', lambda: eq(sorted(c.attach(stdout=True, stderr=True, stream=False, logs=True).splitlines()), [b'bye', b'got:hello'], 'attach(logs=True) of an exited container'))

    def attach_stream():
        c2 = g.create('busybox', ['sh', '-c', 'echo one; sleep 1; echo two'])
        stream = c2.attach(stdout=True, stderr=True, stream=True)
        c2.start()
        eq(b''.join(stream), b'one\ntwo\n', 'attach(stream=True) until the container exits')
        eq(c2.wait()['StatusCode'], 0, 'exit')
    g.check('containers.attach_stream', attach_stream)


def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as t:
        for name, (data, mode) in files.items():
            if data is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = mode
                t.addfile(info)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = mode
                info.mtime = 1700000000
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def untar(chunks):
    t = tarfile.open(fileobj=io.BytesIO(b''.join(chunks)))
    return {m.name: (t.extractfile(m).read() if m.isfile() else None, m.mode & 0o7777) for m in t.getmembers()}


@group
def archive(g):
    data = os.urandom(70000)
    c = g.check('containers.archive_target', lambda: g.run('busybox', ['sleep', '600']))
    if c is None:
        return

    def put():
        eq(c.put_archive('/tmp', tar_of({'hello.bin': (data, 0o640), 'sub': (None, 0o755), 'sub/x.txt': (b'x\n', 0o600)})), True, 'put_archive')
        r = c.exec_run(['sh', '-c', 'md5sum /tmp/hello.bin; stat -c %a /tmp/hello.bin; cat /tmp/sub/x.txt'])
        eq(r.output.decode(), f'{hashlib.md5(data).hexdigest()}  /tmp/hello.bin\n640\nx\n', 'the files in the guest')
    g.check('containers.put_archive', put)

    def get():
        chunks, stat = c.get_archive('/tmp/hello.bin')
        eq((stat['name'], stat['size'], stat['mode'] & 0o777), ('hello.bin', 70000, 0o640), 'stat')
        files = untar(chunks)
        eq(list(files), ['hello.bin'], 'members')
        ok(files['hello.bin'][0] == data, 'the same 70000 bytes back')
        chunks, stat = c.get_archive('/tmp/sub')
        ok(stat['mode'] & 0o20000000000, f'a directory (mode {stat["mode"]:o})')
        files = untar(chunks)
        eq(files.get('sub/x.txt'), (b'x\n', 0o600), f'sub/x.txt in {sorted(files)}')
    g.check('containers.get_archive', get)
    g.check('containers.get_archive_missing', lambda: raises(docker.errors.NotFound, lambda: c.get_archive('/no/such/file'), 'get_archive of a missing path'))

    def stopped():
        # A file of the image deleted in the container (an overlay whiteout on its writable layer) stays deleted.
        eq(c.exec_run(['rm', '/etc/group']).exit_code, 0, 'rm /etc/group')
        c.kill()
        c.wait()
        chunks, stat = c.get_archive('/tmp/hello.bin')
        ok(untar(chunks)['hello.bin'][0] == data, 'the file back from the stopped container')
        eq(untar(c.get_archive('/etc/passwd')[0])['passwd'][1], 0o644, 'a file of the image, from the stopped container')
        raises(docker.errors.NotFound, lambda: c.get_archive('/etc/group'), 'a file deleted in the container')
        eq(c.put_archive('/tmp', tar_of({'later.txt': (b'written while stopped\n', 0o600)})), True, 'put_archive while stopped')
        eq(untar(c.get_archive('/tmp/later.txt')[0])['later.txt'], (b'written while stopped\n', 0o600), 'read back while stopped')
        c.reload()
        eq(c.status, 'exited', 'still exited after the copies')
        c.start()
        r = c.exec_run(['sh', '-c', 'cat /tmp/later.txt; md5sum /tmp/hello.bin; [ -e /etc/group ] || echo gone'])
        eq(r.output.decode(), f'written while stopped\n{hashlib.md5(data).hexdigest()}  /tmp/hello.bin\ngone\n', 'what the started container sees')
        c.kill()
        c.wait()
    g.check('containers.get_archive_stopped', stopped)


@group
def stats_top(g):
    name = g.name_of('stats')
    c = g.check('containers.stats_target', lambda: g.run('busybox', ['sleep', '600'], name=name))
    if c is None:
        return

    def stats():
        s = c.stats(stream=False)
        eq((s['name'], s['id']), (f'/{name}', c.id), 'name and id')
        ok(s['memory_stats']['usage'] > 0 and s['memory_stats']['limit'] >= s['memory_stats']['usage'], f'memory {s["memory_stats"]}')
        ok(s['cpu_stats']['cpu_usage']['total_usage'] > 0, 'cpu usage')
        ok(s['precpu_stats']['cpu_usage']['total_usage'] > 0, 'a previous sample (stream=False without one-shot)')
        ok(s['pids_stats']['current'] >= 1, 'pids')
    g.check('containers.stats', stats)

    def stats_stream():
        stream = c.stats(stream=True, decode=True)
        first = next(stream)
        second = next(stream)
        stream.close() if hasattr(stream, 'close') else None
        eq(first['id'], c.id, 'id')
        ok(second['read'] > first['read'], f'a later sample: {first["read"]} then {second["read"]}')
    g.check('containers.stats_stream', stats_stream)

    def top():
        t = c.top()
        eq(t['Titles'][0], 'PID', 'Titles')
        cmds = [p[-1] for p in t['Processes']]
        eq(cmds, ['sleep 600'], 'processes of the container')
    g.check('containers.top', top)
    g.check('containers.top_ps_args', lambda: eq((lambda t: (t['Titles'], [p[1] for p in t['Processes']]))(c.top(ps_args='-o pid,comm')), (['PID', 'COMMAND'], ['sleep']), 'top(ps_args)'))

    def stopped():
        c.kill()
        c.wait()
        e = raises(docker.errors.APIError, lambda: c.top(), 'top of a stopped container')
        eq(e.status_code, 409, 'status')
    g.check('containers.top_stopped_refused', stopped)


@group
def rename_update(g):
    first, second = g.name_of('first'), g.name_of('second')
    c = g.check('containers.rename_target', lambda: g.create('busybox', ['true'], name=first))
    if c is None:
        return

    def rename():
        c.rename(second)
        c.reload()
        eq(c.name, second, 'name')
        eq(g.c.containers.get(second).id, c.id, 'get by the new name')
        raises(docker.errors.NotFound, lambda: g.c.containers.get(first), 'get by the old name')
    g.check('containers.rename', rename)

    def rename_taken():
        other = g.create('busybox', ['true'], name=first)
        e = raises(docker.errors.APIError, lambda: other.rename(second), 'rename to a taken name')
        eq(e.status_code, 409, 'status')
    g.check('containers.rename_conflict', rename_taken)

    def update_memory():
        e = raises(docker.errors.APIError, lambda: c.update(mem_limit='128m'), 'update of the memory limit')
        eq(e.status_code, 501, 'status')
        eq(str(e.explanation), "docker update is not supported by Boson (a micro-VM's memory and CPUs are fixed when it boots)", 'message')
    g.check('containers.update_refused', update_memory)

    def update_restart():
        c.update(restart_policy={'Name': 'on-failure', 'MaximumRetryCount': 2})
        c.reload()
        eq(c.attrs['HostConfig']['RestartPolicy'], {'Name': 'on-failure', 'MaximumRetryCount': 2}, 'restart policy')
    g.check('containers.update_restart_policy', update_restart)


@group
def kill(g):
    def signals():
        c = g.run('busybox', ['sh', '-c', 'trap "echo got-usr1" USR1; trap "echo got-term; exit 5" TERM; echo ready; while true; do sleep 1; done'])
        wait_until(lambda: b'ready' in c.logs(), 60, 'the trap to be set')
        c.kill(signal=10)
        wait_until(lambda: b'got-usr1' in c.logs(), 30, 'USR1 (numeric signal 10) to be trapped')
        c.kill(signal='SIGTERM')
        eq(c.wait()['StatusCode'], 5, 'exit status of the TERM trap')
        eq(c.logs(), b'ready\ngot-usr1\ngot-term\n', 'output')
        return c
    c = g.check('containers.kill_signals', signals)

    def default_kill():
        c2 = g.run('busybox', ['sleep', '600'])
        e = raises(docker.errors.APIError, lambda: c2.kill(signal='SIGBOGUS'), 'kill with an unknown signal')
        eq(e.status_code, 400, 'status')
        c2.kill()
        eq(c2.wait()['StatusCode'], 137, 'exit status after SIGKILL')
        e = raises(docker.errors.APIError, lambda: c2.kill(), 'kill of an exited container')
        eq(e.status_code, 409, 'status')
        ok('is not running' in str(e.explanation), e.explanation)
    g.check('containers.kill_default_and_refusals', default_kill)


@group
def remove_volumes(g):
    keep = g.name_of('keep')
    g.volumes.append(keep)

    def remove_v():
        hc = g.c.api.create_host_config(binds=[f'{keep}:/named'])
        cid = g.c.api.create_container('busybox', ['sh', '-c', 'echo a > /anon/f; echo n > /named/f'], volumes=['/anon', '/named'], host_config=hc)['Id']
        g.containers.append(cid)
        g.c.api.start(cid)
        eq(g.c.api.wait(cid)['StatusCode'], 0, 'exit')
        mounts = {m['Destination']: m for m in g.c.api.inspect_container(cid)['Mounts']}
        eq(sorted(mounts), ['/anon', '/named'], 'mounts')
        eq(mounts['/named']['Name'], keep, 'named volume')
        anon = mounts['/anon']['Name']
        ok(re.match(r'^[0-9a-f]{64}$', anon), f'anonymous volume name {anon}')
        g.volumes.append(anon)
        g.c.api.remove_container(cid, v=True)
        raises(docker.errors.NotFound, lambda: g.c.volumes.get(anon), 'the anonymous volume after remove(v=True)')
        eq(g.c.volumes.get(keep).name, keep, 'the named volume survives remove(v=True)')
    g.check('containers.remove_v', remove_v)


@group
def prune_containers(g):
    def prune():
        a = g.create('busybox', ['true'], labels={'prune': f'a{TAG}'})
        b = g.create('busybox', ['true'], labels={'prune': f'b{TAG}'})
        eq([x.id for x in g.c.containers.list(all=True, filters={'label': f'prune=a{TAG}'})], [a.id], 'list by label')
        eq([x.id for x in g.c.containers.list(filters={'label': f'prune=a{TAG}'})], [], 'a created container is not running')
        r = g.c.containers.prune(filters={'label': f'prune=a{TAG}'})
        eq(r['ContainersDeleted'], [a.id], 'pruned')
        eq(g.c.containers.get(b.id).id, b.id, 'the container the filter left out')
    g.check('containers.prune_filters', prune)


# ---- images -----------------------------------------------------------------------------------------------------

@group
def images(g):
    def list_get():
        # The demo image is imported as localhost/busybox:latest; 'busybox' resolves to it.
        ok(any('localhost/busybox:latest' in i.tags for i in g.c.images.list()), 'localhost/busybox:latest listed')
        named = g.c.images.list(name='localhost/busybox')
        eq([i.tags for i in named], [['localhost/busybox:latest']], 'list(name=localhost/busybox)')
        img = g.c.images.get('busybox')
        ok(re.match(r'^sha256:[0-9a-f]{64}$', img.id), img.id)
        eq((img.attrs['Os'], img.attrs['Architecture']), ('linux', 'amd64'), 'platform')
        ok(len(img.history()) >= 1, 'history')
        raises(docker.errors.ImageNotFound, lambda: g.c.images.get('py/no-such-image:1'), 'get of a missing image')
    g.check('images.list_get', list_get)

    def tag_remove():
        img = g.c.images.get('busybox')
        ref = f'py/box{TAG}:v1'
        g.images.append(ref)
        eq(img.tag(f'py/box{TAG}', 'v1'), True, 'tag')
        eq(g.c.images.get(ref).id, img.id, 'the tag names the same image')
        img.reload()
        ok(ref in img.tags, f'tags {img.tags}')
        g.c.images.remove(ref)
        raises(docker.errors.ImageNotFound, lambda: g.c.images.get(ref), 'get of the removed tag')
        eq(g.c.images.get('busybox').id, img.id, 'busybox is still there')
    g.check('images.tag_remove', tag_remove)


@group
def pull(g):
    ref = f'{REGISTRY}/tools/box'

    def pull_run():
        ok(REGISTRY, 'BOSON_TEST_REGISTRY is set')
        g.images.append(f'{ref}:v1')
        img = g.c.images.pull(ref, tag='v1')
        ok(f'{ref}:v1' in img.tags, f'tags {img.tags}')
        out = g.c.containers.run(f'{ref}:v1', ['uname', '-r'], remove=True)
        ok(b'boson' in out, f'output {out!r}')
    g.check('images.pull_run', pull_run)

    def pull_missing():
        e = raises(docker.errors.NotFound, lambda: g.c.images.pull(ref, tag='nope'), 'pull of a missing tag')
        ok('manifest' in str(e.explanation) and 'not found' in str(e.explanation), f'a 404 from the pull itself: {e.explanation}')
    g.check('images.pull_missing_tag', pull_missing)

    def run_missing():
        # run: create answers 404, docker-py pulls, the registry has no such repository: NotFound.
        raises(docker.errors.NotFound, lambda: g.c.containers.run(f'{REGISTRY}/tools/nothing:1', ['true'], remove=True), 'a run of an image the registry does not have')
    g.check('containers.run_image_not_found', run_missing)

    def low_level_stream():
        g.c.images.remove(f'{ref}:v1')
        events = list(g.c.api.pull(ref, tag='v1', stream=True, decode=True))
        ok(any('Downloaded newer image' in e.get('status', '') for e in events), f'last events {events[-2:]}')
        ok(not any('error' in e for e in events), 'no error event')
    g.check('images.pull_stream', low_level_stream)


# ---- networks ---------------------------------------------------------------------------------------------------

@group
def networks(g):
    name = g.name_of('net')

    def create():
        g.networks.append(name)
        n = g.c.networks.create(name, driver='bridge', labels={'suite': 'docker-py'})
        ok(re.match(r'^[0-9a-f]{64}$', n.id), n.id)
        got = g.c.networks.get(name)
        eq((got.id, got.name, got.attrs['Driver'], got.attrs['Labels']), (n.id, name, 'bridge', {'suite': 'docker-py'}), 'get by name')
        eq(g.c.networks.get(n.id).name, name, 'get by id')
        ok(re.match(r'^\d+\.\d+\.\d+\.\d+/\d+$', got.attrs['IPAM']['Config'][0]['Subnet']), f'IPAM {got.attrs["IPAM"]}')
        ok(name in [x.name for x in g.c.networks.list()], 'listed')
        return n
    n = g.check('networks.create_get_list', create)
    if n is None:
        return
    g.check('networks.list_filters', lambda: eq(([x.name for x in g.c.networks.list(names=[name])], [x.id for x in g.c.networks.list(ids=[n.id])]), ([name], [n.id]), 'list(names=[…]) and list(ids=[…])'))

    def duplicate():
        e = raises(docker.errors.APIError, lambda: g.c.networks.create(name), 'a second network of the same name')
        eq(e.status_code, 409, 'status')
    g.check('networks.create_duplicate_refused', duplicate)

    def remove():
        extra = g.name_of('net-rm')
        g.networks.append(extra)
        g.c.networks.create(extra).remove()
        raises(docker.errors.NotFound, lambda: g.c.networks.get(extra), 'get after remove')
    g.check('networks.remove', remove)

    def prune():
        a, b = g.name_of('prune-a'), g.name_of('prune-b')
        g.networks += [a, b]
        g.c.networks.create(a)
        g.c.networks.create(b)
        deleted = g.c.networks.prune()['NetworksDeleted']
        ok(a in deleted and b in deleted, f'NetworksDeleted {deleted}')
        raises(docker.errors.NotFound, lambda: g.c.networks.get(a), 'get after prune')
    g.check('networks.prune', prune)


@group
def network_endpoints(g):
    name, cname = g.name_of('ep'), g.name_of('ep-c')
    g.networks.append(name)
    n = g.check('networks.endpoint_network', lambda: g.c.networks.create(name))
    if n is None:
        return
    c = g.check('networks.run_on_network', lambda: g.run('busybox', ['sleep', '600'], name=cname, network=name))
    if c is None:
        return
    c.reload()
    nets = c.attrs['NetworkSettings']['Networks']
    ep = next(iter(nets.values()), {})
    prefix = int(n.attrs['IPAM']['Config'][0]['Subnet'].split('/')[1])

    def keyed():
        eq(list(nets), [name], 'NetworkSettings.Networks keys')
        eq(ep.get('NetworkID'), n.id, 'NetworkID')
        ok(re.match(r'^\d+\.\d+\.\d+\.\d+$', ep.get('IPAddress', '')), f'IPAddress {ep.get("IPAddress")}')
    g.check('networks.inspect_keyed_by_name', keyed)
    g.check('networks.inspect_ip_prefix_len', lambda: eq((ep.get('IPPrefixLen'), c.attrs['NetworkSettings']['IPPrefixLen'] if c.attrs['NetworkSettings']['IPAddress'] else prefix), (prefix, prefix), 'IPPrefixLen of the endpoint (and the top-level one when IPAddress is set)'))

    def dns_names():
        ok(isinstance(ep.get('DNSNames'), list) and cname in ep['DNSNames'] and c.id[:12] in ep['DNSNames'], f'DNSNames {ep.get("DNSNames")} holds the name and the short id')
    g.check('networks.inspect_dnsnames', dns_names)

    def aliases_v141():
        # Before API 1.45, Docker lists the container's short id among its aliases on a user network.
        old = client('1.41').api.inspect_container(c.id)['NetworkSettings']['Networks']
        got = old.get(name) or next(iter(old.values()), {})
        ok(isinstance(got.get('Aliases'), list) and c.id[:12] in got['Aliases'], f'Aliases {got.get("Aliases")} (API 1.41) holds the short id')
    g.check('networks.inspect_aliases_v141', aliases_v141)

    def containers_of_network():
        n.reload()
        got = n.attrs['Containers'].get(c.id)
        ok(got is not None, f'Containers {n.attrs["Containers"]} holds the container')
        eq((got['Name'], got['IPv4Address']), (cname, f'{ep.get("IPAddress")}/{prefix}'), 'its entry')
        eq([x.id for x in n.containers], [c.id], 'Network.containers')
    g.check('networks.inspect_containers', containers_of_network)
    g.check('containers.list_filter_network', lambda: eq(([x.id for x in g.c.containers.list(filters={'network': name})], [x.id for x in g.c.containers.list(filters={'network': n.id})]), ([c.id], [c.id]), 'list(filters={network: name}), then by id'))

    def dns():
        out = g.c.containers.run('busybox', ['ping', '-c', '1', '-W', '5', cname], network=name, remove=True)
        ok(b'1 packets received' in out, f'ping by name: {out!r}')
    g.check('networks.dns_by_container_name', dns)

    def remove_in_use():
        e = raises(docker.errors.APIError, lambda: n.remove(), 'remove of a network with a running container')
        eq(e.status_code, 403, f'status ({e.explanation})')
        ok('has active endpoints' in str(e.explanation), e.explanation)
    g.check('networks.remove_in_use_refused', remove_in_use)

    def connect_created():
        other = g.create('busybox', ['true'])
        n.connect(other)
        other.reload()
        ok(name in other.attrs['NetworkSettings']['Networks'], f'Networks {list(other.attrs["NetworkSettings"]["Networks"])}')
        n.disconnect(other)
        other.reload()
        ok(name not in other.attrs['NetworkSettings']['Networks'], 'disconnected')
    g.check('networks.connect_disconnect_created', connect_created)

    def connect_running():
        second = g.name_of('ep2')
        g.networks.append(second)
        n2 = g.c.networks.create(second)
        n2.connect(c)
        c.reload()
        eq(sorted(c.attrs['NetworkSettings']['Networks']), sorted([name, second]), 'networks of the running container')
        n2.disconnect(c)
    g.check('networks.connect_disconnect_running', connect_running)


# ---- volumes ----------------------------------------------------------------------------------------------------

@group
def volumes(g):
    name = g.name_of('vol')

    def create():
        g.volumes.append(name)
        v = g.c.volumes.create(name, driver='local', labels={'suite': 'docker-py'})
        eq((v.name, v.attrs['Driver'], v.attrs['Labels']), (name, 'local', {'suite': 'docker-py'}), 'created')
        eq(g.c.volumes.get(name).id, name, 'get')
        eq([x.name for x in g.c.volumes.list(filters={'name': name})], [name], 'list by name')
        ok(name in [x.name for x in g.c.volumes.list(filters={'label': 'suite=docker-py'})], 'list by label')
        return v
    v = g.check('volumes.create_get_list', create)
    if v is None:
        return

    def anonymous():
        a = g.c.volumes.create()
        g.volumes.append(a.name)
        ok(re.match(r'^[0-9a-f]{64}$', a.name), f'generated name {a.name}')
        a.remove()
    g.check('volumes.create_unnamed', anonymous)

    def persist():
        g.c.containers.run('busybox', ['sh', '-c', 'echo persisted > /v/f'], volumes={name: {'bind': '/v', 'mode': 'rw'}}, remove=True)
        eq(g.c.containers.run('busybox', ['cat', '/v/f'], volumes={name: {'bind': '/v', 'mode': 'ro'}}, remove=True), b'persisted\n', 'the file from the first container')
    g.check('volumes.data_persists', persist)

    def in_use():
        c = g.run('busybox', ['sleep', '600'], volumes={name: {'bind': '/v', 'mode': 'rw'}})
        e = raises(docker.errors.APIError, lambda: v.remove(), 'remove of a volume in use')
        eq(e.status_code, 409, 'status')
        ok('volume is in use' in str(e.explanation), e.explanation)
        c.remove(force=True)
    g.check('volumes.remove_in_use_refused', in_use)

    def remove():
        v.remove()
        raises(docker.errors.NotFound, lambda: g.c.volumes.get(name), 'get after remove')
    g.check('volumes.remove', remove)


@group
def volume_prune(g):
    def named_v141():
        name = g.name_of('prune141')
        g.volumes.append(name)
        g.c.volumes.create(name)
        deleted = client('1.41').volumes.prune()['VolumesDeleted'] or []
        ok(name in deleted, f'API 1.41 prunes unused named volumes too (Docker adds all=true before 1.42); VolumesDeleted {deleted}')
    g.check('volumes.prune_v141_named', named_v141)

    def anonymous_v142():
        c142 = client('1.42')
        name = g.name_of('prune142')
        g.volumes.append(name)
        c142.volumes.create(name)
        cid = g.c.api.create_container('busybox', ['true'], volumes=['/anon'])['Id']
        g.containers.append(cid)
        anon = g.c.api.inspect_container(cid)['Mounts'][0]['Name']
        g.volumes.append(anon)
        g.c.api.remove_container(cid)
        deleted = c142.volumes.prune()['VolumesDeleted'] or []
        ok(anon in deleted, f'the anonymous volume pruned: {deleted}')
        ok(name not in deleted, 'the named volume kept (API 1.42)')
        eq(c142.volumes.get(name).name, name, 'the named volume')
    g.check('volumes.prune_v142_anonymous', anonymous_v142)


# ---- events and df ----------------------------------------------------------------------------------------------

@group
def events(g):
    name = g.name_of('ev')

    def bounded():
        since = time.time() - 1
        c = g.run('busybox', ['sh', '-c', 'exit 3'], name=name)
        c.wait()
        c.remove()
        evs = list(g.c.events(since=since, until=time.time() + 1, decode=True, filters={'container': name}))
        actions = [e['Action'] for e in evs]
        for a in ('create', 'start', 'die', 'destroy'):
            ok(a in actions, f'{a} in {actions}')
        ok(actions.index('create') < actions.index('start') < actions.index('die') < actions.index('destroy'), f'order {actions}')
        die = evs[actions.index('die')]
        eq((die['Type'], die['Actor']['ID'], die['Actor']['Attributes'].get('name'), die['Actor']['Attributes'].get('exitCode'), die['Actor']['Attributes'].get('image')),
           ('container', c.id, name, '3', 'busybox'), 'the die event')
    g.check('events.bounded', bounded)

    def live():
        stream = g.c.events(decode=True, filters={'type': 'container', 'event': ['start', 'die']})
        timer = threading.Timer(90, stream.close)
        timer.start()
        seen = []
        try:
            c = g.run('busybox', ['true'], labels={'events': TAG})
            for e in stream:
                if e['Actor']['ID'] == c.id:
                    seen.append(e['Action'])
                if 'die' in seen:
                    break
        finally:
            timer.cancel()
            stream.close()
        eq(seen, ['start', 'die'], 'live events of the container (filtered)')
    g.check('events.live', live)


@group
def df(g):
    def disk_usage():
        name = g.name_of('df')
        g.volumes.append(name)
        g.c.volumes.create(name)
        c = g.create('busybox', ['true'])
        d = g.c.df()
        ok({'LayersSize', 'Images', 'Containers', 'Volumes', 'BuildCache'} <= set(d), f'keys {sorted(d)}')
        ok(d['LayersSize'] > 0, 'LayersSize')
        ok(g.c.images.get('busybox').id in [i['Id'] for i in d['Images']], 'busybox in Images')
        ok(c.id in [x['Id'] for x in d['Containers']], 'the container in Containers')
        vol = next((v for v in d['Volumes'] if v['Name'] == name), None)
        ok(vol is not None and vol['UsageData']['RefCount'] == 0, f'the volume in Volumes: {vol}')
    g.check('system.df', disk_usage)


def main(argv):
    if argv[:1] == ['--list']:
        print('\n'.join(GROUPS))
        return 0
    if not SOCK:
        print('BOSON_DOCKER_SOCK is not set', file=sys.stderr)
        return 2
    for name in argv or list(GROUPS):
        if name not in GROUPS:
            print(f'no group {name}', file=sys.stderr)
            return 2
        g = Group(name)
        try:
            GROUPS[name](g)
        except Exception as e:  # noqa: BLE001 - a group that breaks outside its checks
            emit(f'{name}.group', False, describe(e))
        finally:
            g.cleanup()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
