// @ts-check
// The admin API client (contract: /api/v1). Every request carries the bearer token.

/** @typedef {import("./auth.js").TokenSource} TokenSource */

/**
 * The settings a session was created under.
 * @typedef {{max_session_seconds: number, idle_timeout_seconds: number}} SessionPolicy
 */

/**
 * One row of the Active User Sessions list (`SessionPublic`). A column the page does not know
 * is read by its key (`fieldOf`).
 * @typedef {object} SessionItem
 * @property {string} session_id
 * @property {string} user_id
 * @property {string} user_name
 * @property {string} session_type
 * @property {string} ip_address
 * @property {string} created_at
 * @property {string} last_activity_at
 * @property {string} expires_at
 * @property {string | null} device
 * @property {string | null} user_agent
 * @property {SessionPolicy} policy
 * @property {boolean} policy_outdated
 */

/**
 * A page of the list; `as_of` is the moment `total` was read, the first page's on later pages (a termination by
 * the same filter with it as `confirmed_at` ends nothing created after it). `total_exact` false:
 * `total` is a lower bound (a broad search stopped counting once its page was full).
 * @typedef {{items: SessionItem[], next_cursor: string | null, total: number, total_exact?: boolean, as_of: string}} SessionsPage
 */

/**
 * A lifecycle event of a session.
 * @typedef {{event_id: string, type: string, occurred_at: string, detail: Record<string, unknown>}} HistoryEntry
 */

/**
 * One session in any state, with its history (`SessionDetail`).
 * @typedef {SessionItem & {state: string, active: boolean, history: HistoryEntry[]}} SessionDetail
 */

/** @typedef {"admin" | "security"} AdminReason why an admin ends sessions (the audit shows it) */

/**
 * What to end: explicit ids, or every active session matching a filter object and created no
 * later than `confirmed_at` (the `as_of` of the count the admin confirmed); and why.
 * @typedef {({session_ids: string[]} | {filter: import("./query.js").FilterObject, confirmed_at: string}) & {reason: AdminReason}} TerminationTarget
 */

/**
 * One session type's limits (`SessionSettingPublic`).
 * @typedef {{session_type: string, max_session_seconds: number, idle_timeout_seconds: number, is_default: boolean, updated_at: string | null, updated_by: string | null}} SessionSetting
 */

/**
 * One termination request in the audit (`AuditEntry`).
 * @typedef {{command_id: string, requested_by: string, requested_at: string, reason: string, target: {session_ids?: string[], filter?: Record<string, unknown>}, requested: number, status: "pending" | "applied" | "failed", terminated: number, applied_at: string | null, failed_at?: string | null}} AuditEntry
 */

/** @typedef {{command_id: string, status: "accepted", requested: number}} TerminationAccepted */
/** @typedef {{command_id: string, status: "pending" | "applied" | "failed", terminated: number}} TerminationStatus */

/**
 * The value of any field of a row, by name (for columns the page has no typed field for).
 * @param {SessionItem} item
 * @param {string} key
 * @returns {unknown}
 */
export function fieldOf(item, key) {
  return Object.hasOwn(item, key) ? /** @type {Record<string, unknown>} */ (item)[key] : undefined;
}

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {string | null} field the request field a 422 names
   * @param {string | null} reason a 503's or 429's `reason` (`time_limit`: the database stopped the request; `schema_behind`: not yet migrated to this release; `outcome_unknown`: Kafka took the change, or may have, and the request failed after it; `exports_busy`: the tenant's exports are all streaming)
   * @param {boolean} [fromApi] the body is the admin API's own (`detail`): not a proxy's answer
   */
  constructor(status, message, field = null, reason = null, fromApi = false) {
    super(message);
    this.status = status;
    this.field = field;
    this.reason = reason;
    this.fromApi = fromApi;
  }
}

/**
 * `body[name]` when `body` is an object holding it (an error body as the API sent it).
 * @param {unknown} body
 * @param {string} name
 * @returns {unknown}
 */
function member(body, name) {
  return body !== null && typeof body === "object" && name in body ? /** @type {Record<string, unknown>} */ (body)[name] : undefined;
}

/**
 * A readable message from a FastAPI error body (422 details name the field).
 * @param {unknown} body
 * @returns {{message: string, field: string | null}}
 */
function describe(body) {
  const detail = member(body, "detail");
  if (typeof detail === "string") return { message: detail, field: null };
  if (Array.isArray(detail) && detail.length > 0) {
    const first = /** @type {{loc?: unknown, msg?: unknown}} */ (detail[0] ?? {});
    const loc = Array.isArray(first.loc) ? first.loc.filter((p) => p !== "query" && p !== "body") : [];
    const field = loc.length ? loc.join(".") : null;
    const message = field ? `${field}: ${first.msg}` : String(first.msg);
    return { message, field };
  }
  return { message: "no details given", field: null };
}

/**
 * A new name for one request the admin makes (`Idempotency-Key`): 128 random bits in hex.
 * `crypto.getRandomValues`, not `randomUUID`: the page may be served over plain HTTP.
 * @returns {string}
 */
export function requestKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Whether a change the page asked for may have been applied although the request failed: the
 * answer was lost (no answer at all, or one that could not be read: status 0), the API said so
 * (503 `outcome_unknown`: Kafka took the change, or may have), or something failed while
 * answering (a 5xx but the API's own 503 without a reason, which changed nothing). Sending the same request again is then the way to know; "nothing was changed" would
 * be more than is known.
 * @param {unknown} error
 * @returns {error is ApiError}
 */
export function outcomeUnknown(error) {
  if (!(error instanceof ApiError)) return false;
  if (error.status === 0 || error.reason === "outcome_unknown") return true;
  // the API's own 503 without a reason changed nothing; a proxy's 503 (no such body) may come
  // after the request reached the API, as may any other 5xx
  return error.status >= 500 && !(error.status === 503 && error.fromApi);
}

/**
 * The body of a 2xx answer; one cut short or unreadable is an answer not known (status 0):
 * for a change, it was made.
 * @param {Response} response
 * @returns {Promise<any>}
 */
async function answerOf(response) {
  try {
    return await response.json();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ApiError(0, `The answer of the admin API could not be read (${reason}).`);
  }
}

export class Api {
  /**
   * @param {TokenSource} tokens
   * @param {(final: boolean) => void} onUnauthorized told of a 401: `final` when no fresh token helped
   */
  constructor(tokens, onUnauthorized) {
    this.tokens = tokens;
    this.onUnauthorized = onUnauthorized;
    this.base = new URL("../api/v1/", document.baseURI);
  }

  /**
   * @param {string} path relative to /api/v1/
   * @param {{method?: string, params?: URLSearchParams | null, body?: unknown, accept?: string, headers?: Record<string, string>, timeoutMs?: number}} [options]
   * `timeoutMs`: a request not answered within it fails as unanswered (status 0)
   * @returns {Promise<Response>}
   */
  async request(path, { method = "GET", params = null, body = undefined, accept = "application/json", headers = {}, timeoutMs = 0 } = {}) {
    const url = new URL(path, this.base);
    if (params) url.search = params.toString();
    const options = { headers, timeoutMs };
    let response = await this.send(url, method, body, accept, await this.tokens.token(), options);
    if (response.status === 401 && this.tokens.canRefresh()) {
      // An expired token: the deployment's sign-in may hand out a fresh one silently.
      this.onUnauthorized(false);
      response = await this.send(url, method, body, accept, await this.tokens.fetchFresh(), options);
    }
    if (response.ok) return response;
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (response.status === 401) this.onUnauthorized(true);
    const { message, field } = describe(payload);
    const reason = member(payload, "reason");
    const detail = member(payload, "detail");
    const fromApi = typeof detail === "string" || Array.isArray(detail);
    throw new ApiError(response.status, message, field, typeof reason === "string" ? reason : null, fromApi);
  }

  /**
   * @param {URL} url
   * @param {string} method
   * @param {unknown} body
   * @param {string} accept
   * @param {string | null} token
   * @param {{headers?: Record<string, string>, timeoutMs?: number}} [options] the request's own headers; its bound
   */
  async send(url, method, body, accept, token, { headers: extra = {}, timeoutMs = 0 } = {}) {
    /** @type {Record<string, string>} */
    const headers = { ...extra, Accept: accept };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await fetch(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
        signal: timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : null,
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ApiError(0, `The admin API could not be reached (${reason}).`);
    }
  }

  /**
   * One page of the Active User Sessions list: {items, next_cursor, total}.
   * @param {URLSearchParams} params
   * @returns {Promise<SessionsPage>}
   */
  async listSessions(params) {
    return (await this.request("sessions", { params })).json();
  }

  /**
   * One session with its lifecycle history.
   * @param {string} sessionId
   * @returns {Promise<SessionDetail>}
   */
  async getSession(sessionId) {
    return (await this.request(`sessions/${encodeURIComponent(sessionId)}`)).json();
  }

  /**
   * The current view as CSV (a Blob).
   * @param {URLSearchParams} params
   */
  async exportCsv(params) {
    return (await this.request("sessions/export.csv", { params, accept: "text/csv" })).blob();
  }

  /**
   * Ask for termination: {session_ids: [...]} or {filter: {...}}; answers {command_id, status, requested}.
   * `key` names the request (`Idempotency-Key`): sent again with the same key and target, it
   * is the same command, applied once, whatever became of the first.
   * @param {TerminationTarget} target
   * @param {string} key
   * @returns {Promise<TerminationAccepted>}
   */
  async terminate(target, key) {
    const headers = { "Idempotency-Key": key };
    return answerOf(await this.request("sessions/terminations", { method: "POST", body: target, headers }));
  }

  /**
   * The tenant's session settings, one entry per settable type, and their tag (`ETag`), which a
   * change sends back so that it is made only on these.
   * @returns {Promise<{items: SessionSetting[], tag: string | null}>}
   */
  async getSettings() {
    const response = await this.request("settings/sessions");
    const { items } = await response.json();
    // a compressing proxy marks the tag weak (nginx: W/"…") or suffixes it (Apache: "…-gzip",
    // "…-br", "…-zstd"), and such a tag never matches a change's If-Match: the API's own tag
    // (32 hexadecimal digits, never a "-") is sent back. A proxy that drops it leaves none, and
    // a change is then made without If-Match, as before 2.1.0
    const tag = response.headers.get("ETag")?.replace(/^W\//, "").replace(/-(gzip|br|zstd)"$/, '"') ?? null;
    return { items, tag };
  }

  /**
   * Change one type's limits for new sessions, only while the settings are still those `tag`
   * names (412 otherwise: another change was stored since they were read).
   * @param {string} sessionType
   * @param {{max_session_seconds: number, idle_timeout_seconds: number}} policy
   * @param {string | null} tag
   * @returns {Promise<{items: SessionSetting[]}>}
   */
  async putSetting(sessionType, policy, tag) {
    /** @type {Record<string, string>} */
    const headers = tag ? { "If-Match": tag } : {};
    return answerOf(await this.request(`settings/sessions/${encodeURIComponent(sessionType)}`, { method: "PUT", body: policy, headers }));
  }

  /**
   * One page of the termination audit, newest first.
   * @param {URLSearchParams} params since, until, requested_by, limit, cursor
   * @returns {Promise<{items: AuditEntry[], next_cursor: string | null}>}
   */
  async getAudit(params) {
    return (await this.request("audit/terminations", { params })).json();
  }

  /**
   * {status: "pending"|"applied"|"failed", terminated}; unanswered within `timeoutMs`, or
   * unreadable, it fails as unanswered (status 0), which the caller reads again.
   * @param {string} commandId
   * @param {number} [timeoutMs]
   * @returns {Promise<TerminationStatus>}
   */
  async terminationStatus(commandId, timeoutMs = 10_000) {
    return answerOf(await this.request(`sessions/terminations/${encodeURIComponent(commandId)}`, { timeoutMs }));
  }
}
