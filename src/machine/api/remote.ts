/**
 * The typed client of a machine: the port (MachineImages, and MachineContainers but for the calls that stream a
 * process's I/O) over the daemon's REST API. Answers are typed by the port's schemas, the same ones the server
 * validates and documents with; problem answers become the typed BosonErrors the machine raised. The streaming
 * container calls (attach, logs, run, exec start) stay on MachineClient's upgrade helpers for now.
 */
import { BosonError } from '../../common/index.ts';
import type { ImageImportSource, ImageProgressListener, MachineContainers, MachineImages } from '../port/machine.ts';
import type {
  Container, ContainerSpec, ContainerStats, ExecInstance, ExecSpec, Image, ImageInspect, ImagePruneResult, ImagePullRequest, ImagePullResult, ImagePullStreamItem,
  ImageRemoveResult, RequestContext, WaitCondition, WaitResult,
} from '../port/schemas.ts';
import { errorFrom, type MachineClient } from './client.ts';

const seg = (ref: string): string => encodeURIComponent(ref);

/** MachineImages over `/v1/images`. */
export class RemoteImages implements MachineImages {
  constructor(private readonly client: MachineClient) {}

  async pull(_ctx: RequestContext, request: ImagePullRequest, onProgress?: ImageProgressListener): Promise<ImagePullResult> {
    let result: ImagePullResult | undefined;
    let failure: BosonError | undefined;
    await this.client.stream<ImagePullStreamItem>('/v1/images/pull', (item) => {
      if ('progress' in item) onProgress?.(item.progress);
      else if ('result' in item) result = item.result;
      else failure = errorFrom(item.error.status, JSON.stringify(item.error));
    }, undefined, { body: request });
    if (failure) throw failure;
    if (!result) throw new BosonError('DAEMON_UNAVAILABLE', `the pull of ${request.reference} ended without a result`);
    return result;
  }

  async import(_ctx: RequestContext, source: ImageImportSource, options: { tag?: string; onProgress?: ImageProgressListener } = {}): Promise<Image[]> {
    const query = new URLSearchParams();
    if (options.tag !== undefined) query.set('tag', options.tag);
    if ('path' in source) {
      query.set('path', source.path);
      return this.client.request<Image[]>('POST', `/v1/images/import?${query}`);
    }
    return this.client.request<Image[]>('POST', `/v1/images/import?${query}`, source.tar, 'application/x-tar');
  }

  list(_ctx: RequestContext): Promise<Image[]> {
    return this.client.request<Image[]>('GET', '/v1/images');
  }

  inspect(_ctx: RequestContext, ref: string): Promise<ImageInspect> {
    return this.client.request<ImageInspect>('GET', `/v1/images/${seg(ref)}`);
  }

  tag(_ctx: RequestContext, ref: string, name: string): Promise<Image> {
    return this.client.request<Image>('POST', `/v1/images/${seg(ref)}/tag?${new URLSearchParams({ name })}`);
  }

  remove(_ctx: RequestContext, ref: string, options: { force?: boolean } = {}): Promise<ImageRemoveResult> {
    return this.client.request<ImageRemoveResult>('DELETE', `/v1/images/${seg(ref)}${options.force ? '?force=1' : ''}`);
  }

  prune(_ctx: RequestContext): Promise<ImagePruneResult> {
    return this.client.request<ImagePruneResult>('POST', '/v1/images/prune');
  }
}

/** The container calls of the port that are plain requests. */
export type RemoteContainerCalls = Omit<MachineContainers, 'attach' | 'logs' | 'run' | 'startExec'>;

/** A remote machine: its images, and its containers over `/v1/containers` and `/v1/execs`. */
export class RemoteMachine implements RemoteContainerCalls {
  readonly images: RemoteImages;

  constructor(readonly client: MachineClient) {
    this.images = new RemoteImages(client);
  }

  create(_ctx: RequestContext, spec: ContainerSpec): Promise<Container> {
    return this.client.request<Container>('POST', '/v1/containers', spec);
  }

  async start(_ctx: RequestContext, ref: string): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/start`);
  }

  async stop(_ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/stop${timeoutSec === undefined ? '' : `?t=${timeoutSec}`}`);
  }

  async restart(_ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/restart${timeoutSec === undefined ? '' : `?t=${timeoutSec}`}`);
  }

  async kill(_ctx: RequestContext, ref: string, signal?: string): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/kill${signal === undefined ? '' : `?${new URLSearchParams({ signal })}`}`);
  }

  async remove(_ctx: RequestContext, ref: string, options: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const query = new URLSearchParams();
    if (options.force) query.set('force', '1');
    if (options.volumes) query.set('v', '1');
    await this.client.request('DELETE', `/v1/containers/${seg(ref)}${query.size > 0 ? `?${query}` : ''}`);
  }

  async rename(_ctx: RequestContext, ref: string, newName: string): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/rename?${new URLSearchParams({ name: newName })}`);
  }

  wait(_ctx: RequestContext, ref: string, condition: WaitCondition = 'not-running'): Promise<WaitResult> {
    return this.client.request<WaitResult>('POST', `/v1/containers/${seg(ref)}/wait?condition=${condition}`);
  }

  list(_ctx: RequestContext, options: { all?: boolean } = {}): Promise<Container[]> {
    return this.client.request<Container[]>('GET', `/v1/containers${options.all ? '?all=1' : ''}`);
  }

  inspect(_ctx: RequestContext, ref: string): Promise<Container> {
    return this.client.request<Container>('GET', `/v1/containers/${seg(ref)}`);
  }

  stats(_ctx: RequestContext, ref: string): Promise<ContainerStats> {
    return this.client.request<ContainerStats>('GET', `/v1/containers/${seg(ref)}/stats`);
  }

  async resize(_ctx: RequestContext, ref: string, rows: number, cols: number): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/resize?h=${rows}&w=${cols}`);
  }

  createExec(_ctx: RequestContext, ref: string, spec: ExecSpec): Promise<ExecInstance> {
    return this.client.request<ExecInstance>('POST', `/v1/containers/${seg(ref)}/execs`, spec);
  }

  inspectExec(_ctx: RequestContext, id: string): Promise<ExecInstance> {
    return this.client.request<ExecInstance>('GET', `/v1/execs/${seg(id)}`);
  }
}
