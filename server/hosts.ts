// DNS rebinding. A web page on attacker.example can make its own name resolve to 127.0.0.1;
// the browser then sends that page's requests to a server on the user's machine, with
// `Host: attacker.example:8000` and an Origin of that same name, so the origin check
// (origins.ts) takes them for the server's own pages. The Host header is what gives the
// attack away: a server bound to a loopback address answers only to loopback names
// (localhost, 127.x.x.x, [::1]) and to the names listed in --allowed-hosts, and refuses any
// other with 403. Bound to another address, it cannot know the names it is reached by (a
// Service's DNS name, an IP): the check is off unless --allowed-hosts lists them.
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './openai/errors.ts';

/** In --allowed-hosts: every name (the check off). */
export const ANY_HOST = '*';

/** A configured host name (lowercased, without port), or null when it is not one. */
export function normalizeHostName(raw: string): string | null {
  const name = raw.trim().toLowerCase();
  if (name === ANY_HOST) return name;
  if (isIP(name) === 4 || /^\[[0-9a-f:.]+\]$/.test(name)) return name;
  if (isIP(name) === 6) return `[${name}]`;
  return /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/.test(name)
    ? name.replace(/\.$/, '')
    : null;
}

function isLoopbackName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost') || name === '[::1]' || (isIP(name) === 4 && name.startsWith('127.'));
}

/**
 * The Host names a server listening on `listenHost` accepts: null for any. Loopback names
 * always pass where the check is on.
 */
export function acceptedHosts(listenHost: string, allowedHosts: readonly string[]): ReadonlySet<string> | null {
  if (allowedHosts.includes(ANY_HOST)) return null;
  const listen = normalizeHostName(listenHost);
  if (allowedHosts.length === 0 && (listen === null || !isLoopbackName(listen))) return null;
  return new Set([...allowedHosts, ...(listen !== null ? [listen] : [])]);
}

/** The name part of a Host header (port removed, IPv6 kept in brackets), lowercased. */
function hostName(header: string): string {
  const host = header.trim().toLowerCase();
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return (colon >= 0 ? host.slice(0, colon) : host).replace(/\.$/, '');
}

function hostNotAllowed(header: string): ApiError {
  const name = hostName(header);
  const message =
    `This server does not answer to the host name ${JSON.stringify(name)} (Host: ${JSON.stringify(header)}). If the name is ` +
    `yours, start the server with --allowed-hosts ${name} (or MOE_SERVER_ALLOWED_HOSTS).`;
  return new ApiError(403, message, 'invalid_request_error', null, 'host_not_allowed');
}

/** Registers the Host check (an onRequest hook, before the origin check and authentication). */
export function registerHostGuard(app: FastifyInstance, accepted: ReadonlySet<string> | null): void {
  if (accepted === null) return;
  app.addHook('onRequest', async (request) => {
    const header = request.headers.host;
    // HTTP/1.0 clients may send none; browsers always do.
    if (header === undefined) return;
    const name = hostName(header);
    if (!isLoopbackName(name) && !accepted.has(name)) throw hostNotAllowed(header);
  });
}
