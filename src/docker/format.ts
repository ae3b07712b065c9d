/**
 * Small formatting rules shared by the Docker answers: human durations and container status lines as
 * `docker ps` shows them, image names in Docker's familiar form, Docker's zero time.
 */
import type { ContainerRecord } from '../machine/index.ts';

/** Docker's "zero" time, used for StartedAt/FinishedAt that never happened. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Docker's units.HumanDuration. */
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

/** The Status column of `docker ps` ("Up 5 seconds", "Exited (0) 2 minutes ago", "Created"). */
export function statusText(r: ContainerRecord, now = Date.now()): string {
  const since = (iso: string | null): string => humanDuration(now - Date.parse(iso ?? new Date(now).toISOString()));
  switch (r.state) {
    case 'running':
      return `Up ${since(r.startedAt)}`;
    case 'restarting':
      return `Restarting (${r.exitCode ?? 0}) ${since(r.finishedAt)} ago`;
    case 'exited':
      return `Exited (${r.exitCode ?? 0}) ${since(r.finishedAt)} ago`;
    case 'created':
      return 'Created';
    default:
      return r.state;
  }
}

/** "docker.io/library/busybox:latest" → "busybox:latest"; "docker.io/me/x:1" → "me/x:1"; others unchanged. */
export function familiarName(ref: string): string {
  return ref.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

/** RFC 3339 with nine fraction digits (Docker's RFC3339NanoFixed) from nanoseconds since the epoch. */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}

/** Unix seconds of an ISO time (0 when absent). */
export function unixSeconds(iso: string | null | undefined): number {
  if (!iso) return 0;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

/** Docker's "sha256:<hex>" id. */
export function withSha(id: string): string {
  return id.startsWith('sha256:') ? id : `sha256:${id}`;
}
