// @ts-check
// What the admin reads when something goes wrong: API errors in plain words, signing in again.
import { ApiError } from "./api.js";
import { el } from "./dom.js";

/** @typedef {import("./auth.js").TokenSource} TokenSource */

/**
 * One sentence for an error of the admin API (or of the network).
 * @param {unknown} error
 * @returns {string}
 */
export function describeError(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error instanceof Error ? error.message : String(error)}`;
  if (error.status === 401) return "Your sign-in has expired or is missing. Sign in again.";
  if (error.status === 403) {
    return "The Edit User Sessions grant is missing from your account, so you cannot see or end sessions. Ask an administrator to grant it.";
  }
  if (error.status === 404) return "That session no longer exists in this instance.";
  if (error.status === 422) return `The admin API refused the request: ${error.message}`;
  if (error.status === 0) return error.message;
  return `The admin API failed (${error.status}: ${error.message}). Try again in a moment.`;
}

/**
 * The 401 banner: a link to the deployment's sign-in, or how to get a development link.
 * @param {TokenSource} tokens
 */
export function signInMessage(tokens) {
  const href = tokens.signInHref();
  const action = href
    ? el("a", { href, class: "button button-primary" }, "Sign in again")
    : el(
        "span",
        {},
        "Sign in again: open the sign-in link that ",
        el("code", {}, "session-control"),
        " printed, or reload this page from your platform's sign-in.",
      );
  return [el("strong", {}, "Your sign-in has expired or is missing. "), action];
}
