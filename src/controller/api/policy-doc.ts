/**
 * The policy table of docs/controller.md, made from the routes' declared policies (a test keeps the document equal
 * to it; `npx tsx scripts/controller-doc.ts` prints it).
 */
import type { RouteEntry } from './server.ts';

const WHO: Record<string, string> = {
  public: 'anyone (no token)',
  authenticated: 'any principal',
  'system-admin': 'system admin',
  'tenant-admin': 'tenant admin',
  member: 'project member',
  viewer: 'viewer',
};

/** The markdown table: one row per route, in path order. */
export function policyTable(routes: RouteEntry[]): string {
  const rows = [...routes]
    .filter((r) => r.method !== 'HEAD')
    .sort((a, b) => (a.url === b.url ? a.method.localeCompare(b.method) : a.url.localeCompare(b.url)))
    .map((r) => {
      const p = r.policy!;
      const scope =
        p.scope === 'params' && p.allow !== 'system-admin' ? (r.url.includes(':project') ? ' of the project' : ' of the tenant') : '';
      const who = `${WHO[p.allow]}${scope}${p.note ? ` (${p.note})` : ''}`;
      return `| \`${r.method} ${r.url}\` | ${who} |`;
    });
  return ['| route | who may call it |', '|---|---|', ...rows].join('\n');
}
