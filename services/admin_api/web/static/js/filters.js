// @ts-check
// Per-column filter dialogs: text contains, a choice of values, IP or CIDR, date range. Which
// control a column gets follows from the server's filters for it (vocabulary.js).
import { dialogButton } from "./dialogs.js";
import { el } from "./dom.js";
import { fromLocalInput, toLocalInput } from "./timefmt.js";

/** @typedef {import("./dialogs.js").Modal} Modal */
/** @typedef {import("./dom.js").Child} Child */
/** @typedef {import("./query.js").FilterValue} FilterValue */
/** @typedef {import("./vocabulary.js").Column} Column */
/** @typedef {import("./vocabulary.js").TextFilter} TextFilter */
/** @typedef {import("./vocabulary.js").ChoiceFilter} ChoiceFilter */

/**
 * A filter dialog's form controls, the one to focus first, and how to read the value.
 * A filter dialog's form controls, the one to focus first, how to read the value, and `check`:
 * a plain-language problem with what was entered (shown in the dialog), or null.
 * @typedef {{nodes: Child[], focus: HTMLElement | undefined, read: () => FilterValue | null, check: () => string | null}} Control
 */

/**
 * @param {Column} column
 * @param {TextFilter} spec
 * @param {FilterValue | undefined} current
 * @returns {Control}
 */
function textControl(column, spec, current) {
  const input = el("input", {
    type: "text",
    id: "filter-input",
    value: typeof current === "string" ? current : "",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: spec.maxLength,
  });
  const exact = spec.control === "exact";
  return {
    nodes: [el("label", { for: "filter-input" }, `${column.label} ${exact ? "is exactly" : "contains"}`), input],
    focus: input,
    read: () => input.value.trim() || null,
    check: () => null,
  };
}

/**
 * @param {Column} column
 * @param {ChoiceFilter} spec
 * @param {FilterValue | undefined} current
 * @returns {Control}
 */
function choiceControl(column, spec, current) {
  const chosen = new Set(Array.isArray(current) ? current : []);
  const boxes = spec.choices.map((value) =>
    el("input", { type: "checkbox", value, id: `filter-${spec.name}-${value}`, checked: chosen.has(value) }),
  );
  const fieldset = el(
    "fieldset",
    { class: "choice" },
    el("legend", {}, `${column.label} is`),
    boxes.map((box) => el("label", { for: box.id, class: "choice-item" }, box, column.choiceLabel(box.value))),
  );
  return {
    nodes: [fieldset],
    focus: boxes[0],
    read: () => boxes.filter((b) => b.checked).map((b) => b.value),
    check: () => null,
  };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:]+(:(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})?$/;

/**
 * What is wrong with an address or network, in plain words; null when it is one (the API
 * checks it again; this only saves the admin a refused request).
 * @param {string} text
 */
export function ipProblem(text) {
  if (!text) return null;
  const [address, prefix, extra] = text.split("/");
  if (extra !== undefined) return "Use at most one “/”, as in 10.0.0.0/8.";
  const v4 = IPV4.test(address ?? "");
  const v6 = !v4 && (address ?? "").includes(":") && IPV6.test(address ?? "") && (address ?? "").split("::").length <= 2;
  if (!v4 && !v6) {
    if (/^[\d.]+$/.test(address ?? "")) {
      return `“${address}” is not a complete IPv4 address: it needs four numbers from 0 to 255, like 203.0.113.7 (to match a range, add a prefix: 203.0.113.0/24).`;
    }
    return `“${address}” is not an IP address. Enter one like 203.0.113.7 or 2001:db8::1, or a network like 10.0.0.0/8.`;
  }
  if (prefix !== undefined) {
    const max = v4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return `The part after “/” must be a number from 0 to ${max}.`;
  }
  return null;
}

/**
 * @param {Column} column
 * @param {TextFilter} spec
 * @param {FilterValue | undefined} current
 * @returns {Control}
 */
function ipControl(column, spec, current) {
  const input = el("input", {
    type: "text",
    id: "filter-input",
    value: typeof current === "string" ? current : "",
    placeholder: "203.0.113.7 or 10.0.0.0/8",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: spec.maxLength,
    "aria-describedby": "filter-hint",
  });
  return {
    nodes: [
      el("label", { for: "filter-input" }, `${column.label} (address or CIDR network)`),
      input,
      el("p", { id: "filter-hint", class: "hint" }, "IPv4 or IPv6; a network like 10.0.0.0/8 matches every address in it."),
    ],
    focus: input,
    read: () => input.value.trim() || null,
    check: () => ipProblem(input.value.trim()),
  };
}

/**
 * @param {Column} column
 * @param {FilterValue | undefined} current
 * @returns {Control}
 */
function rangeControl(column, current) {
  const range = typeof current === "object" && !Array.isArray(current) ? current : null;
  const from = el("input", { type: "datetime-local", id: "filter-from", value: toLocalInput(range?.from) });
  const to = el("input", { type: "datetime-local", id: "filter-to", value: toLocalInput(range?.to) });
  return {
    nodes: [
      el(
        "fieldset",
        { class: "range" },
        el("legend", {}, `${column.label} between (your local time)`),
        el("label", { for: "filter-from" }, "From"),
        from,
        el("label", { for: "filter-to" }, "To"),
        to,
      ),
    ],
    focus: from,
    read: () => {
      const value = { from: fromLocalInput(from.value), to: fromLocalInput(to.value) };
      return value.from || value.to ? value : null;
    },
    check: () => {
      if ((from.value && !fromLocalInput(from.value)) || (to.value && !fromLocalInput(to.value))) {
        return "Enter a complete date and time, or leave the field empty.";
      }
      const a = fromLocalInput(from.value);
      const b = fromLocalInput(to.value);
      if (a && b && Date.parse(a) >= Date.parse(b)) return "“From” must be earlier than “To”: this range contains no time at all.";
      return null;
    },
  };
}

/**
 * The dialog's control for a column with a filter.
 * @param {Column} column
 * @param {FilterValue | undefined} current
 * @returns {Control | null}
 */
function controlOf(column, current) {
  const spec = column.filter;
  if (spec === null) return null;
  switch (spec.control) {
    case "text":
    case "exact":
      return textControl(column, spec, current);
    case "ip":
      return ipControl(column, spec, current);
    case "choice":
      return choiceControl(column, spec, current);
    case "range":
      return rangeControl(column, current);
  }
}

/**
 * Open the filter dialog of `column`; `onApply(value|null)` sets or clears the filter.
 * @param {Modal} modal
 * @param {Column} column
 * @param {FilterValue | undefined} current
 * @param {(value: FilterValue | null) => void} onApply
 */
export function openFilterDialog(modal, column, current, onApply) {
  const control = controlOf(column, current);
  if (control === null) return;
  const problem = el("p", { id: "filter-problem", class: "inline-error", role: "alert" });
  problem.hidden = true;
  const apply = () => {
    const found = control.check();
    if (found) {
      problem.textContent = found;
      problem.hidden = false;
      control.focus?.setAttribute("aria-invalid", "true");
      control.focus?.setAttribute("aria-errormessage", "filter-problem");
      control.focus?.focus();
      return;
    }
    modal.close();
    onApply(control.read());
  };
  const form = el(
    "form",
    {
      class: "filter-form",
      onsubmit: (event) => {
        event.preventDefault();
        apply();
      },
    },
    control.nodes,
    problem,
  );
  modal.open({
    title: `Filter ${column.label}`,
    body: [form],
    actions: [
      dialogButton("Apply", apply, "button-primary"),
      dialogButton("Clear filter", () => {
        modal.close();
        onApply(null);
      }),
      dialogButton("Cancel", () => modal.close()),
    ],
    initialFocus: control.focus ?? null,
  });
}
