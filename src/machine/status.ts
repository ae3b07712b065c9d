/** How a container's state reads to people, in Docker's words ("Up 5 seconds", "Exited (0) 2 minutes ago"). */
import type { Container } from './port/index.ts';

/** Docker's units.HumanDuration ("Less than a second", "About a minute", "3 hours"). */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.round(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.round(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.round(h / 24 / 30)} months`;
  return `${Math.round(h / 24 / 365)} years`;
}

/** The STATUS column of `ps` ("Up 5 seconds", "Exited (0) 2 minutes ago", "Restarting (1) …", "Created"). */
export function statusText(
  r: Pick<Container, 'state' | 'startedAt' | 'finishedAt' | 'exitCode' | 'pausedReason' | 'suspendedAt'>,
  now = Date.now(),
): string {
  const since = (iso: string | null): string => humanDuration(now - Date.parse(iso ?? new Date(now).toISOString()));
  switch (r.state) {
    case 'running':
      return `Up ${since(r.startedAt)}${r.pausedReason === undefined ? '' : ' (Paused: host disk full)'}`;
    case 'restarting':
      return `Restarting (${r.exitCode ?? 0}) ${since(r.finishedAt)} ago`;
    case 'exited':
      return `Exited (${r.exitCode ?? 0}) ${since(r.finishedAt)} ago`;
    case 'created':
      return 'Created';
    case 'suspended':
      return `Suspended ${since(r.suspendedAt ?? null)} ago`;
    default:
      return r.state;
  }
}
