// The admin API client (contract: /api/v1). Every request carries the bearer token.

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

/** A readable message from a FastAPI error body (422 details name the field). */
function describe(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return { message: detail, field: null };
  if (Array.isArray(detail) && detail.length > 0) {
    const first = detail[0];
    const loc = Array.isArray(first.loc) ? first.loc.filter((p) => p !== "query" && p !== "body") : [];
    const field = loc.length ? loc.join(".") : null;
    const message = field ? `${field}: ${first.msg}` : String(first.msg);
    return { message, field };
  }
  return { message: "no details given", field: null };
}

export class Api {
  constructor(tokens, onUnauthorized) {
    this.tokens = tokens;
    this.onUnauthorized = onUnauthorized;
    this.base = new URL("../api/v1/", document.baseURI);
  }

  async request(path, { method = "GET", params = null, body = undefined, accept = "application/json" } = {}) {
    const url = new URL(path, this.base);
    if (params) url.search = params.toString();
    let response = await this.send(url, method, body, accept, await this.tokens.token());
    if (response.status === 401 && this.tokens.canRefresh()) {
      // An expired token: the deployment's sign-in may hand out a fresh one silently.
      this.onUnauthorized(false);
      response = await this.send(url, method, body, accept, await this.tokens.fetchFresh());
    }
    if (response.ok) return response;
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (response.status === 401) this.onUnauthorized(true);
    const { message, field } = describe(response.status, payload);
    throw new ApiError(response.status, message, field);
  }

  async send(url, method, body, accept, token) {
    const headers = { Accept: accept };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, `The admin API could not be reached (${error.message}).`);
    }
  }

  /** One page of the Active User Sessions list: {items, next_cursor, total}. */
  async listSessions(params) {
    return (await this.request("sessions", { params })).json();
  }

  /** One session with its lifecycle history. */
  async getSession(sessionId) {
    return (await this.request(`sessions/${encodeURIComponent(sessionId)}`)).json();
  }

  /** The current view as CSV (a Blob). */
  async exportCsv(params) {
    return (await this.request("sessions/export.csv", { params, accept: "text/csv" })).blob();
  }

  /** Ask for termination: {session_ids: [...]} or {filter: {...}}; answers {command_id, status, requested}. */
  async terminate(target) {
    return (await this.request("sessions/terminations", { method: "POST", body: target })).json();
  }

  /** {status: "pending"|"applied", terminated}. */
  async terminationStatus(commandId) {
    return (await this.request(`sessions/terminations/${encodeURIComponent(commandId)}`)).json();
  }
}
