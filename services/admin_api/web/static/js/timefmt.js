// @ts-check
// Times in the admin's own time zone; the full timestamp (with zone) on hover.
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

/**
 * A <time> element: short text, machine-readable datetime, full timestamp in its title.
 * @param {unknown} iso an RFC 3339 timestamp (anything else is shown as text, nothing as "—")
 */
export function timeElement(iso) {
  if (!iso) return el("span", { class: "muted" }, "—");
  const text = String(iso);
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return el("span", {}, text);
  return el("time", { datetime: date.toISOString(), title: FULL.format(date) }, shortTime(text));
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
