// The admin's bearer token: from the sign-in link's URL fragment, from this tab's
// sessionStorage, or (in production) from the deployment's token endpoint.
const STORAGE_KEY = "sessionControl.token";

/**
 * Move a `#token=...` fragment into sessionStorage and strip it from the address bar.
 * Fragments never reach the server, so the token never lands in access logs; after
 * replaceState it is not in the URL, the history entry or a bookmark either.
 */
export function adoptTokenFromFragment() {
  if (!location.hash) return;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (!token) return;
  sessionStorage.setItem(STORAGE_KEY, token);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

/** Drop the stored token (after the API refused it). */
export function forgetToken() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** Where tokens come from and where "Sign in again" leads. */
export class TokenSource {
  constructor(config) {
    this.tokenUrl = config.token_url || null;
    this.signInUrl = config.sign_in_url || null;
  }

  /** The token to send, or null when the admin is not signed in. */
  async token() {
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) return stored;
    return this.fetchFresh();
  }

  /** Ask the deployment's token endpoint (cookie-authenticated) for a fresh token. */
  async fetchFresh() {
    if (!this.tokenUrl) return null;
    try {
      const response = await fetch(this.tokenUrl, {
        credentials: "include",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return null;
      const body = await response.json();
      const token = typeof body.access_token === "string" ? body.access_token : null;
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
