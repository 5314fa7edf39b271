// @ts-check
// The admin's bearer token: from this tab's sessionStorage, from the deployment's token
// endpoint (production), or, in development only, from the sign-in link's URL fragment.
const STORAGE_KEY = "sessionControl.token";

/** @typedef {import("./config.js").PageConfig} PageConfig */

/**
 * A JWT's claims as the page reads them (unverified; only to name whose token it is).
 * @typedef {{sub?: unknown, tenant?: unknown} & Record<string, unknown>} Claims
 */

/**
 * What a sign-in link's token does to this tab (`linkSignIn`).
 * @typedef {{outcome: "none" | "ignored" | "adopted"}
 *   | {outcome: "confirm", token: string, current: Claims | null, offered: Claims | null}} LinkResult
 */

/**
 * Take a `#token=...` fragment out of the address bar, in every mode, and return the token
 * (or null). Fragments never reach the server, so the token never lands in access logs; after
 * replaceState it is not in the URL, the history entry or a bookmark either. Whether it is
 * used is `linkSignIn`'s decision, once the page knows its mode.
 */
export function takeTokenFromFragment() {
  if (!location.hash) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("token")) return null;
  const token = params.get("token");
  params.delete("token");
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return token || null;
}

/**
 * A JWT's claims, unverified: only to tell the admin whose token it is; null if unreadable.
 * @param {string | null} token
 * @returns {Claims | null}
 */
export function peekClaims(token) {
  if (token === null) return null;
  try {
    const part = (token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
    /** @type {unknown} */
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === "object" && !Array.isArray(claims) ? /** @type {Claims} */ (claims) : null;
  } catch {
    return null;
  }
}

/**
 * @param {Claims | null} a
 * @param {Claims | null} b
 */
function sameAdmin(a, b) {
  return a !== null && b !== null && typeof a.tenant === "string" && a.tenant === b.tenant && a.sub === b.sub;
}

/** Use `token` in this tab from now on. */
export function adoptToken(/** @type {string} */ token) {
  sessionStorage.setItem(STORAGE_KEY, token);
}

/**
 * What a sign-in link's token does to this tab:
 * - "ignored": the deployment has no fragment sign-in (production): the token is dropped;
 * - "adopted": development, and the tab had no token or one of the same admin and tenant;
 * - "confirm": development, but the tab is signed in as someone else or to another tenant:
 *   nothing changes unless the admin chooses to switch (`adoptToken(result.token)`).
 * @param {string | null} token
 * @param {PageConfig} config
 * @returns {LinkResult}
 */
export function linkSignIn(token, config) {
  if (!token) return { outcome: "none" };
  if (config.fragment_sign_in !== true) return { outcome: "ignored" };
  const stored = sessionStorage.getItem(STORAGE_KEY);
  if (!stored || stored === token || sameAdmin(peekClaims(stored), peekClaims(token))) {
    adoptToken(token);
    return { outcome: "adopted" };
  }
  return { outcome: "confirm", token, current: peekClaims(stored), offered: peekClaims(token) };
}

/** Drop the stored token (after the API refused it). */
export function forgetToken() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** Where tokens come from and where "Sign in again" leads. */
export class TokenSource {
  /** @param {PageConfig} config */
  constructor(config) {
    this.tokenUrl = config.token_url || null;
    this.signInUrl = config.sign_in_url || null;
  }

  /**
   * The token to send, or null when the admin is not signed in.
   * @returns {Promise<string | null>}
   */
  async token() {
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) return stored;
    return this.fetchFresh();
  }

  /**
   * Ask the deployment's token endpoint (cookie-authenticated) for a fresh token.
   * @returns {Promise<string | null>}
   */
  async fetchFresh() {
    if (!this.tokenUrl) return null;
    try {
      const response = await fetch(this.tokenUrl, {
        credentials: "include",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return null;
      /** @type {unknown} */
      const body = await response.json();
      const token =
        body !== null && typeof body === "object" && "access_token" in body && typeof body.access_token === "string"
          ? body.access_token
          : null;
      if (token) sessionStorage.setItem(STORAGE_KEY, token);
      return token;
    } catch {
      return null;
    }
  }

  /** Whether a refused token may be replaced without the admin's help. */
  canRefresh() {
    return Boolean(this.tokenUrl);
  }

  /** The sign-in address to offer, returning here afterwards; null in development. */
  signInHref() {
    if (!this.signInUrl) return null;
    const url = new URL(this.signInUrl, location.href);
    url.searchParams.set("return_to", location.origin + location.pathname);
    return url.toString();
  }
}
