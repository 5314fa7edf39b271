// @ts-check
// Times relative to now ("5 minutes ago"); the exact local timestamp (with zone) on hover.
import { el } from "./dom.js";

const SHORT = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});
const SHORT_THIS_YEAR = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});
const FULL = new Intl.DateTimeFormat(undefined, {
  dateStyle: "full",
  timeStyle: "long",
});

/** The short local rendering of an RFC 3339 timestamp (the year only when it is not this one). */
export function shortTime(/** @type {string} */ iso) {
  const date = new Date(iso);
  return (date.getFullYear() === new Date().getFullYear() ? SHORT_THIS_YEAR : SHORT).format(date);
}

/** The full local rendering, with seconds and the time zone. */
export function fullTime(/** @type {string} */ iso) {
  return FULL.format(new Date(iso));
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
/** @type {[number, Intl.RelativeTimeFormatUnit][]} seconds per unit, largest first */
const UNITS = [
  [365 * 86400, "year"],
  [30 * 86400, "month"],
  [86400, "day"],
  [3600, "hour"],
  [60, "minute"],
  [1, "second"],
];

/**
 * "5 minutes ago", "in 29 days", "now": a time relative to `now`, to the largest whole unit.
 * @param {Date} date
 * @param {number} [now] milliseconds since the epoch
 */
export function relativeTime(date, now = Date.now()) {
  const delta = Math.round((date.getTime() - now) / 1000);
  const size = Math.abs(delta);
  if (size < 10) return "just now";
  for (const [seconds, unit] of UNITS) {
    if (size >= seconds) return RELATIVE.format(Math.trunc(delta / seconds), unit);
  }
  return RELATIVE.format(delta, "second");
}

/**
 * A <time> element: relative text ("5 minutes ago"), machine-readable datetime, and the exact
 * local timestamp (with seconds and zone) on hover. `refreshRelativeTimes` keeps the text current.
 * @param {unknown} iso an RFC 3339 timestamp (anything else is shown as text, nothing as "—")
 */
export function timeElement(iso) {
  if (!iso) return el("span", { class: "muted" }, "—");
  const text = String(iso);
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return el("span", {}, text);
  return el(
    "time",
    { datetime: date.toISOString(), title: FULL.format(date), dataset: { relative: "" } },
    relativeTime(date),
  );
}

/** Bring every relative <time> under `root` up to date (the page calls it every few seconds). */
export function refreshRelativeTimes(/** @type {ParentNode} */ root = document) {
  const now = Date.now();
  for (const node of root.querySelectorAll("time[data-relative]")) {
    const text = relativeTime(new Date(node.getAttribute("datetime") ?? ""), now);
    if (node.textContent !== text) node.textContent = text;
  }
}

/** A value for <input type="datetime-local"> from an ISO timestamp (local time). */
export function toLocalInput(/** @type {string | null | undefined} */ iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** An RFC 3339 UTC timestamp from a datetime-local value read as local time; null when empty. */
export function fromLocalInput(/** @type {string} */ value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/**
 * Whether a session's creation is dated after `asOf` (when the list showing it was read): a
 * termination by filter leaves such a session out until that time.
 * @param {string} createdAt
 * @param {string | null} asOf
 */
export function datedAhead(createdAt, asOf) {
  return asOf !== null && Date.parse(createdAt) > Date.parse(asOf);
}
