/**
 * The volume half of the machine port (MachineVolumes) over this host's VolumeManager. The composition root builds
 * it beside the runtime (which owns it); what it must know of containers (which ones mount a volume) it is told
 * through `usersOf`, so that it never reaches into the runtime.
 */
import type { MachineVolumes } from './port/machine.ts';
import type { RequestContext, Volume, VolumeCreateRequest, VolumeInspect, VolumePruneResult } from './port/schemas.ts';
import type { ContainerRecord } from './containers.ts';
import type { VolumeManager } from './volumes/index.ts';

/** The ids of the containers among `records` that mount volume `name`. */
export function volumeUsersAmong(records: ContainerRecord[], name: string): string[] {
  return records.filter((r) => (r.mounts ?? []).some((m) => m.type === 'volume' && m.name === name)).map((r) => r.id);
}

/** MachineVolumes on this host (see the module comment). */
export class VolumeService implements MachineVolumes {
  /** `usersOf`: the ids of the containers (any state) that mount a volume. */
  constructor(
    readonly volumes: VolumeManager,
    private readonly usersOf: (name: string) => Promise<string[]>,
  ) {}

  async create(_ctx: RequestContext, request: VolumeCreateRequest): Promise<Volume> {
    return this.volumes.create(request.name ?? '', { labels: request.labels, sizeBytes: request.sizeBytes });
  }

  async list(_ctx: RequestContext): Promise<Volume[]> {
    return this.volumes.list();
  }

  async inspect(_ctx: RequestContext, name: string): Promise<VolumeInspect> {
    const volume = this.volumes.get(name);
    return { ...volume, usageBytes: await this.volumes.usage(volume.name), usedBy: await this.usersOf(volume.name) };
  }

  async remove(_ctx: RequestContext, name: string): Promise<void> {
    await this.volumes.remove(name, await this.usersOf(name));
  }

  async prune(_ctx: RequestContext, options: { all?: boolean } = {}): Promise<VolumePruneResult> {
    const removed: string[] = [];
    for (const v of this.volumes.list()) {
      if (!v.anonymous && !options.all) continue;
      if ((await this.usersOf(v.name)).length > 0) continue;
      await this.volumes.remove(v.name, []);
      removed.push(v.name);
    }
    return { removed };
  }
}
