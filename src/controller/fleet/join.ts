/**
 * The machine's side of joining a fleet (what `boson machine join URL --token T` does): fetch the CA of the
 * controller's endpoint and check it against the fingerprint the join token carries (as Docker swarm's join tokens
 * pin the manager's CA), then, over TLS verified against it, send the machine's address, capacity, labels, zone and a
 * fresh public key; the answer is the machine's id and certificate, and the fleet CA that the controller's client
 * certificate is signed by (what the machine's TCP endpoint must trust). The private key never leaves this host.
 */
import https from 'node:https';
import { BosonError, errorFromProblem } from '../../common/index.ts';
import type { Resources } from '../scheduler/index.ts';
import { fingerprint, makeKeyPair } from './ca.ts';
import { parseJoinToken, type JoinResponse } from './fleet.ts';

/** What joining needs. */
export interface JoinOptions {
  /** https://host:port of the controller. */
  url: string;
  token: string;
  /** host:port where the controller will reach this machine's REST API. */
  address: string;
  capacity: Resources;
  labels?: Record<string, string>;
  zone?: string;
  /** The controller's CA (PEM), when the token carries no fingerprint (or to skip fetching it). */
  controllerCa?: string;
}

/** What a joined machine keeps: its id, key and certificate, the fleet CA, and the controller's CA. */
export interface Joined extends JoinResponse {
  key: string;
  controllerCa: string;
}

function call<T>(url: URL, method: string, path: string, ca: string | undefined, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = https.request(
      {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port || 443),
        method,
        path,
        agent: false,
        ...(ca === undefined ? { rejectUnauthorized: false } : { ca }),
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 500) >= 400) reject(errorFromProblem(res.statusCode ?? 500, text));
          else resolve(JSON.parse(text) as T);
        });
      },
    );
    req.on('error', (err) =>
      reject(
        new BosonError('CONTROLLER_UNAVAILABLE', `cannot reach the Boson controller at ${url.origin}: ${err.message}`, { cause: err }),
      ),
    );
    req.end(payload);
  });
}

/** Joins the controller at `opts.url` (see the module comment). */
export async function joinController(opts: JoinOptions): Promise<Joined> {
  const parsed = parseJoinToken(opts.token);
  if (!parsed) throw new BosonError('JOIN_TOKEN_INVALID', 'that is not a join token (bjoin_…; boson machine token create makes one)');
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new BosonError('INVALID_ARGUMENT', `invalid controller address ${JSON.stringify(opts.url)} (use https://host:port)`);
  }
  if (url.protocol !== 'https:') throw new BosonError('INVALID_ARGUMENT', `a machine joins over https only, not ${url.protocol}`);
  let controllerCa = opts.controllerCa;
  if (controllerCa === undefined) {
    if (!parsed.caFingerprint)
      throw new BosonError('INVALID_ARGUMENT', "the join token pins no CA: give the controller's CA (--controller-ca FILE)");
    // Fetched without verification, then believed only if it is the CA the token names.
    const fetched = await call<{ ca: string }>(url, 'GET', '/v1/machines/ca', undefined);
    if (fingerprint(fetched.ca) !== parsed.caFingerprint)
      throw new BosonError(
        'JOIN_TOKEN_INVALID',
        `the controller at ${url.origin} presented a CA that the join token does not name (a different controller, or someone in between)`,
      );
    controllerCa = fetched.ca;
  } else if (parsed.caFingerprint && fingerprint(controllerCa) !== parsed.caFingerprint) {
    throw new BosonError('JOIN_TOKEN_INVALID', 'the given controller CA is not the one the join token names');
  }
  const { key, publicKey } = await makeKeyPair();
  const answer = await call<JoinResponse>(url, 'POST', '/v1/machines/join', controllerCa, {
    token: opts.token,
    address: opts.address,
    capacity: opts.capacity,
    ...(opts.labels ? { labels: opts.labels } : {}),
    ...(opts.zone ? { zone: opts.zone } : {}),
    publicKey,
  });
  return { ...answer, key, controllerCa };
}
