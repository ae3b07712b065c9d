/**
 * CRI's pod sandbox and container RPCs over the port's MachinePods: RunPodSandbox, StopPodSandbox,
 * RemovePodSandbox, PodSandboxStatus, ListPodSandbox, CreateContainer, StartContainer, StopContainer,
 * RemoveContainer, ContainerStatus, ListContainers, ExecSync and ReopenContainerLog. CRI's messages are turned into
 * the port's PodSpec and PodContainerSpec here; what Boson cannot honour is refused with a status saying so.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { PodContainer, PodContainerStats, Pod, PodMachine, PodSpec, PodContainerSpec, PortBinding } from '../machine/port/index.ts';
import { CriRefusal } from './errors.ts';
import type { CriHandler } from './handler.ts';
import { containerResourcesOf, criResourcesOf } from './resources.ts';
import { securityOf } from './security.ts';
import type { StreamingServer } from './streaming.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- the proto's messages have no static types here */

const nowNs = (): string => String(BigInt(Date.now()) * 1_000_000n);

function unimplemented(what: string): never {
  throw new CriRefusal(grpc.status.UNIMPLEMENTED, what);
}

/** A decimal int64 of the proto as a number. */
const num = (v: unknown): number => Number(v ?? 0);

/** The port's PodSpec of a RunPodSandbox request. */
export function podSpecOf(req: any): PodSpec {
  const config = req.config ?? {};
  const meta = config.metadata ?? {};
  if (!meta.name) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'PodSandboxConfig.metadata.name is required');
  const ports: PortBinding[] = [];
  for (const m of config.portMappings ?? []) {
    if (num(m.hostPort) === 0) continue; // a port the pod exposes, published nowhere
    if (m.protocol === 'SCTP') unimplemented('SCTP port mappings are not supported (TCP and UDP are)');
    ports.push({
      hostIp: m.hostIp ?? '',
      hostPort: num(m.hostPort),
      containerPort: num(m.containerPort),
      protocol: m.protocol === 'UDP' ? 'udp' : 'tcp',
    });
  }
  const linux = config.linux ?? {};
  const res = linux.resources ?? {};
  const overhead = linux.overhead ?? {};
  const memBytes = num(res.memoryLimitInBytes) + (num(res.memoryLimitInBytes) > 0 ? num(overhead.memoryLimitInBytes) : 0);
  const cpus = num(res.cpuPeriod) > 0 && num(res.cpuQuota) > 0 ? Math.ceil(num(res.cpuQuota) / num(res.cpuPeriod)) : 0;
  const resources = {
    ...(memBytes > 0 ? { memoryMiB: Math.max(64, Math.ceil(memBytes / (1024 * 1024))) } : {}),
    ...(cpus > 0 ? { cpus } : {}),
  };
  const dns = config.dnsConfig;
  return {
    name: meta.name,
    uid: meta.uid ?? '',
    namespace: meta.namespace ?? '',
    attempt: num(meta.attempt),
    ...(config.hostname ? { hostname: config.hostname } : {}),
    ...(dns && (dns.servers?.length || dns.searches?.length || dns.options?.length)
      ? { dns: { servers: dns.servers ?? [], searches: dns.searches ?? [], options: dns.options ?? [] } }
      : {}),
    labels: config.labels ?? {},
    annotations: config.annotations ?? {},
    ...(Object.keys(resources).length > 0 ? { resources } : {}),
    ...(config.logDirectory ? { logDirectory: config.logDirectory } : {}),
    runtimeHandler: req.runtimeHandler ?? '',
    ...(ports.length > 0 ? { ports } : {}),
  };
}

/** The port's PodContainerSpec of a CreateContainer request (logDirectory: the pod's). */
export function containerSpecOf(config: any, logDirectory: string | undefined): PodContainerSpec {
  const meta = config.metadata ?? {};
  if (!meta.name) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'ContainerConfig.metadata.name is required');
  const image = config.image?.image ?? '';
  if (image === '') throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'ContainerConfig.image.image is required');
  const mounts = (config.mounts ?? []).map((m: any) => {
    if (m.image?.image) unimplemented('image volumes are not supported yet');
    if (m.propagation === 'PROPAGATION_BIDIRECTIONAL')
      unimplemented('bidirectional mount propagation is not supported: mounts made in the pod VM cannot reach the host');
    if ((m.uidMappings ?? []).length > 0 || (m.gidMappings ?? []).length > 0) unimplemented('id-mapped mounts are not supported');
    if (!m.hostPath || !m.containerPath)
      throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'a Mount needs a host_path and a container_path');
    return { hostPath: m.hostPath, containerPath: m.containerPath, readOnly: Boolean(m.readonly || m.recursiveReadOnly) };
  });
  if ((config.devices ?? []).length > 0 || (config.CDIDevices ?? config.cDIDevices ?? []).length > 0)
    unimplemented('devices in a container of a pod are not supported: a micro-VM has no host devices');
  const security = securityOf(config.linux?.securityContext);
  const resources = containerResourcesOf(config.linux?.resources);
  const env = (config.envs ?? []).map((kv: any) => `${kv.key}=${Buffer.isBuffer(kv.value) ? kv.value.toString('utf8') : (kv.value ?? '')}`);
  let logPath: string | undefined;
  if (config.logPath) {
    if (path.isAbsolute(config.logPath)) logPath = config.logPath;
    else if (logDirectory) logPath = path.join(logDirectory, config.logPath);
    else throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'ContainerConfig.log_path is relative and the pod has no log_directory');
  }
  return {
    name: meta.name,
    attempt: num(meta.attempt),
    image,
    ...((config.command ?? []).length > 0 ? { command: config.command } : {}),
    ...((config.args ?? []).length > 0 ? { args: config.args } : {}),
    ...(env.length > 0 ? { env } : {}),
    ...(config.workingDir ? { cwd: config.workingDir } : {}),
    ...security,
    labels: config.labels ?? {},
    annotations: config.annotations ?? {},
    ...(logPath !== undefined ? { logPath } : {}),
    ...(mounts.length > 0 ? { mounts } : {}),
    ...(config.stdin ? { stdin: true, ...(config.stdinOnce ? { stdinOnce: true } : {}) } : {}),
    ...(config.tty ? { tty: true } : {}),
    ...(resources ? { resources } : {}),
  };
}

const podState = (p: Pod): string => (p.state === 'ready' ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY');

function podMetadata(p: Pod): Record<string, unknown> {
  return { name: p.spec.name, uid: p.spec.uid, namespace: p.spec.namespace, attempt: p.spec.attempt };
}

function criPod(p: Pod): Record<string, unknown> {
  return {
    id: p.id,
    metadata: podMetadata(p),
    state: podState(p),
    createdAt: p.createdNs,
    labels: p.spec.labels,
    annotations: p.spec.annotations,
    runtimeHandler: p.spec.runtimeHandler ?? '',
  };
}

const containerState = (c: PodContainer): string =>
  c.state === 'created' ? 'CONTAINER_CREATED' : c.state === 'running' ? 'CONTAINER_RUNNING' : 'CONTAINER_EXITED';

function criContainer(c: PodContainer): Record<string, unknown> {
  return {
    id: c.id,
    podSandboxId: c.podId,
    metadata: { name: c.spec.name, attempt: c.spec.attempt },
    image: { image: c.spec.image, annotations: {} },
    imageRef: c.imageId,
    imageId: c.imageId,
    state: containerState(c),
    createdAt: c.createdNs,
    labels: c.spec.labels,
    annotations: c.spec.annotations,
  };
}

/** True when `labels` has every key and value of `selector`. */
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

/** CRI's PodSandboxStats of a pod (its VM's usage, from the host; per-container usage is not collected). */
async function podStats(machine: PodMachine, ctx: Parameters<CriHandler>[0], p: Pod): Promise<Record<string, unknown>> {
  const s = await machine.pods.stats(ctx, p.id);
  const u = (n: number): { value: string } => ({ value: String(Math.max(0, Math.round(n))) });
  return {
    attributes: { id: p.id, metadata: podMetadata(p), labels: p.spec.labels, annotations: p.spec.annotations },
    linux: {
      cpu: { timestamp: s.timestampNs, usageCoreNanoSeconds: u(s.cpuNs) },
      memory: {
        timestamp: s.timestampNs,
        workingSetBytes: u(s.memoryBytes),
        usageBytes: u(s.memoryBytes),
        rssBytes: u(s.memoryBytes),
        availableBytes: u(s.memoryLimitBytes - s.memoryBytes),
      },
      process: { timestamp: s.timestampNs, processCount: u(s.processes) },
      containers: [],
    },
  };
}

/** CRI's ContainerStats of a container, with what its main process uses (none while it does not run). */
function criContainerStats(c: PodContainer, s: PodContainerStats | undefined): Record<string, unknown> {
  const u = (n: number): { value: string } => ({ value: String(Math.max(0, Math.round(n))) });
  return {
    attributes: {
      id: c.id,
      metadata: { name: c.spec.name, attempt: c.spec.attempt },
      labels: c.spec.labels,
      annotations: c.spec.annotations,
    },
    cpu: s ? { timestamp: s.timestampNs, usageCoreNanoSeconds: u(s.cpuNs) } : null,
    memory: s
      ? { timestamp: s.timestampNs, workingSetBytes: u(s.memoryBytes), rssBytes: u(s.memoryBytes), usageBytes: u(s.memoryBytes) }
      : null,
    writableLayer: null,
  };
}

/** The pod and container handlers, by RPC name. */
export function podHandlers(machine: PodMachine, streaming?: StreamingServer): Record<string, CriHandler> {
  const pods = machine.pods;
  const byId = (what: string, id: string | undefined): string => {
    if (!id) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, `${what} is required`);
    return id;
  };
  return {
    RunPodSandbox: async (ctx, req) => ({ podSandboxId: (await pods.run(ctx, podSpecOf(req))).id }),
    StopPodSandbox: async (ctx, req) => {
      await pods.stop(ctx, byId('pod_sandbox_id', req.podSandboxId));
      return {};
    },
    RemovePodSandbox: async (ctx, req) => {
      await pods.remove(ctx, byId('pod_sandbox_id', req.podSandboxId));
      return {};
    },
    PodSandboxStatus: async (ctx, req) => {
      const p = await pods.inspect(ctx, byId('pod_sandbox_id', req.podSandboxId));
      const info: Record<string, string> = {};
      if (req.verbose)
        info.info = JSON.stringify({
          vm: {
            pid: p.vmPid,
            accelerator: p.accelerator,
            containerId: p.vmContainerId,
            memoryMiB: p.resources.memoryMiB,
            cpus: p.resources.cpus,
            network: p.network,
          },
          runtimeHandler: p.spec.runtimeHandler || 'boson',
        });
      return {
        status: {
          ...criPod(p),
          network: { ip: p.address ?? '', additionalIps: [] },
          linux: null,
        },
        info,
        containersStatuses: [],
        timestamp: nowNs(),
      };
    },
    ListPodSandbox: async (ctx, req) => {
      const f = req.filter ?? {};
      const items = (await pods.list(ctx)).filter(
        (p) => (!f.id || p.id.startsWith(f.id)) && (!f.state || podState(p) === f.state.state) && selects(f.labelSelector, p.spec.labels),
      );
      return { items: items.map(criPod) };
    },
    CreateContainer: async (ctx, req) => {
      const pod = await pods.inspect(ctx, byId('pod_sandbox_id', req.podSandboxId));
      const spec = containerSpecOf(req.config ?? {}, pod.spec.logDirectory ?? (req.sandboxConfig?.logDirectory || undefined));
      return { containerId: (await pods.createContainer(ctx, pod.id, spec)).id };
    },
    StartContainer: async (ctx, req) => {
      await pods.startContainer(ctx, byId('container_id', req.containerId));
      return {};
    },
    StopContainer: async (ctx, req) => {
      await pods.stopContainer(ctx, byId('container_id', req.containerId), num(req.timeout));
      return {};
    },
    RemoveContainer: async (ctx, req) => {
      await pods.removeContainer(ctx, byId('container_id', req.containerId));
      return {};
    },
    ListContainers: async (ctx, req) => {
      const f = req.filter ?? {};
      const items = (await pods.listContainers(ctx, f.podSandboxId || undefined)).filter(
        (c) =>
          (!f.id || c.id.startsWith(f.id)) && (!f.state || containerState(c) === f.state.state) && selects(f.labelSelector, c.spec.labels),
      );
      return { containers: items.map(criContainer) };
    },
    ContainerStatus: async (ctx, req) => {
      const c = await pods.inspectContainer(ctx, byId('container_id', req.containerId));
      const info: Record<string, string> = {};
      if (req.verbose)
        info.info = JSON.stringify({ pid: c.pid, argv: c.argv, podSandboxId: c.podId, root: 'its own, unpacked from its image' });
      return {
        status: {
          ...criContainer(c),
          startedAt: c.startedNs,
          finishedAt: c.finishedNs,
          exitCode: c.exitCode ?? 0,
          reason: c.reason,
          message: c.message,
          mounts: [],
          logPath: c.spec.logPath ?? '',
          resources: criResourcesOf(c.spec.resources),
        },
        info,
      };
    },
    ExecSync: async (ctx, req) => {
      const timeout = num(req.timeout);
      const result = await pods.execSync(ctx, byId('container_id', req.containerId), req.cmd ?? [], timeout);
      // As containerd does: a command that outlived its timeout is an error (kubelet's probe then times out).
      if (result.timedOut)
        throw new CriRefusal(
          grpc.status.DEADLINE_EXCEEDED,
          `ExecSync: the command ran longer than its timeout of ${timeout} s and was killed`,
        );
      const cap = (b: Buffer): Buffer => (b.length > 16 * 1024 * 1024 ? b.subarray(0, 16 * 1024 * 1024) : b);
      return { stdout: cap(result.stdout), stderr: cap(result.stderr), exitCode: result.exitCode };
    },
    ContainerStats: async (ctx, req) => {
      const c = await pods.inspectContainer(ctx, byId('container_id', req.containerId));
      const s = (await pods.containerStats(ctx, c.podId)).find((x) => x.id === c.id);
      return { stats: criContainerStats(c, s) };
    },
    ListContainerStats: async (ctx, req) => {
      const f = req.filter ?? {};
      const containers = (await pods.listContainers(ctx, f.podSandboxId || undefined)).filter(
        (c) => c.state === 'running' && (!f.id || c.id.startsWith(f.id)) && selects(f.labelSelector, c.spec.labels),
      );
      const stats = containers.length > 0 ? await pods.containerStats(ctx, f.podSandboxId || undefined) : [];
      return {
        stats: containers.map((c) =>
          criContainerStats(
            c,
            stats.find((x) => x.id === c.id),
          ),
        ),
      };
    },
    PodSandboxStats: async (ctx, req) => ({
      stats: await podStats(machine, ctx, await pods.inspect(ctx, byId('pod_sandbox_id', req.podSandboxId))),
    }),
    ListPodSandboxStats: async (ctx, req) => {
      const f = req.filter ?? {};
      const list = (await pods.list(ctx)).filter((p) => (!f.id || p.id.startsWith(f.id)) && selects(f.labelSelector, p.spec.labels));
      return { stats: await Promise.all(list.map((p) => podStats(machine, ctx, p))) };
    },
    Exec: async (ctx, req) => {
      if (!streaming) throw new CriRefusal(grpc.status.UNIMPLEMENTED, 'Exec: this CRI server runs without its streaming server');
      const containerId = byId('container_id', req.containerId);
      const cmd: string[] = req.cmd ?? [];
      if (cmd.length === 0) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'Exec needs a command');
      if (!req.stdout && !req.stderr && !req.stdin)
        throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'Exec needs at least one of stdin, stdout and stderr');
      const c = await pods.inspectContainer(ctx, containerId);
      if (c.state !== 'running') throw new CriRefusal(grpc.status.FAILED_PRECONDITION, `container ${c.spec.name} is not running`);
      return {
        url: streaming.execUrl({
          containerId: c.id,
          cmd,
          tty: Boolean(req.tty),
          stdin: Boolean(req.stdin),
          stdout: Boolean(req.stdout),
          stderr: Boolean(req.stderr),
        }),
      };
    },
    ReopenContainerLog: async (ctx, req) => {
      await pods.reopenLog(ctx, byId('container_id', req.containerId));
      return {};
    },
  };
}
