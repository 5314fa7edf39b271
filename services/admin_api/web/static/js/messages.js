// @ts-check
// What the admin reads when something goes wrong: API errors in plain words, signing in again.
import { ApiError } from "./api.js";
import { el, plural } from "./dom.js";

/** @typedef {import("./auth.js").TokenSource} TokenSource */

/**
 * One sentence for an error of the admin API (or of the network).
 * @param {unknown} error
 * @returns {string}
 */
export function describeError(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error instanceof Error ? error.message : String(error)}`;
  if (error.status === 401) return "Your sign-in has expired. Sign in again to continue.";
  if (error.status === 403) {
    return "The Edit User Sessions grant is missing from your account, so you cannot see or end sessions. Ask an administrator to grant it.";
  }
  if (error.status === 404) return "That session no longer exists in this instance.";
  if (error.status === 422) return refusal(error.field, error.message);
  if (error.status === 0) return "The session service cannot be reached. Check your network connection; the page tries again when you refresh.";
  if (error.status === 429 && error.reason === "exports_busy") {
    return "Your organization already has as many exports in progress as it may. Try again once one of them has finished.";
  }
  if (error.status === 429) {
    return "Searches in your organization have used their share of the session database for the moment. Try again in a minute, or narrow the search: more characters, or a filter beside it.";
  }
  if (error.status === 503 && error.reason === "time_limit") {
    return "This search took longer than the session database allows. Nothing was changed; narrow it: more characters, or a filter beside it.";
  }
  if (error.status === 503 && error.reason === "schema_behind") {
    return "The session service is being upgraded and its database is not ready for this version yet. Nothing was changed; try again in a few minutes, and tell your platform team if it persists.";
  }
  if (error.status === 503 && error.reason === "outcome_unknown") {
    return "The session service took the change but could not confirm it, so it may be applied. Send it again: the same change is applied once.";
  }
  // a read's failure says nothing of changes: each change says what became of it itself
  if (error.status === 503) return "The session service is busy or restarting; try again in a minute.";
  // a 500, or a proxy's 502 or 504: the request may have been handled before the answer failed
  return `The session service had a problem (error ${error.status}). Try again in a minute, and tell your platform team if it persists.`;
}

/**
 * A termination of `count` sessions whose answer is not known (`outcomeUnknown`): the command
 * may be applied.
 * @param {ApiError} error
 * @param {number} count
 * @returns {string}
 */
export function unknownTermination(error, count) {
  const why =
    error.status === 0
      ? "the answer did not arrive (the network or the session service failed)"
      : error.reason === "outcome_unknown"
        ? "the session service took it but could not confirm it"
        : `the session service failed while answering (error ${error.status})`;
  return `The termination of ${plural(count, "session")} may have been applied: ${why}. Try again to find out: the same request is sent, and it ends each session once.`;
}

/**
 * The same, once its retry was refused: what became of the first request is still not known.
 * @param {unknown} error the retry's
 * @param {number} count
 * @returns {string}
 */
export function stillUnknown(error, count) {
  return `Whether the termination of ${plural(count, "session")} was applied is still not known: its retry was refused (${describeError(error)}). Try again once the session service is back: the same request is sent, and it ends each session once.`;
}

/**
 * A refused request (422) in words: which filter is wrong and how to write it.
 * @param {string | null} field
 * @param {string} message
 */
function refusal(field, message) {
  const name = (field ?? "").split(".").pop() ?? "";
  if (name === "ip_address") return "The IP Address filter is not an address or network. Enter one like 203.0.113.7, 2001:db8::1 or 10.0.0.0/8.";
  if (/_(from|to)$/.test(name)) return "A date filter is not a valid date and time. Open the filter and pick the date again.";
  if (name === "cursor") return "The list changed while loading more rows. Refresh to start from the top.";
  if (name === "session_id") return "The Session ID filter may only contain letters, digits, “-” and “_”.";
  if (name === "user_id") return "The User ID filter is too long or contains characters no user id has.";
  if (name) return `The ${name.replace(/_/g, " ")} value was refused: ${message.replace(/^[\w.]+: /, "")}.`;
  return `The request was refused: ${message}.`;
}

/**
 * The 401 banner: a link to the deployment's sign-in, or how to get a development link.
 * @param {TokenSource} tokens
 */
export function signInMessage(tokens) {
  const href = tokens.signInHref();
  const action = href
    ? el("a", { href, class: "button button-primary" }, "Sign in again")
    : el("span", {}, "Sign in again: open this page from your organization's sign-in. Nothing is shown or can be changed until then.");
  return [el("strong", {}, "Your sign-in has expired or is missing. "), action];
}
