/**
 * Small formatting rules shared by the Docker answers: image names in Docker's familiar form, Docker's zero time,
 * times. (Status lines and human durations come from src/machine, shared with the boson CLI.)
 */

/** Docker's "zero" time, used for StartedAt/FinishedAt that never happened. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

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
