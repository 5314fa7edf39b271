// Per-column filter dialogs: text contains, session type choice, IP or CIDR, date range.
import { SESSION_TYPES } from "./columns.js";
import { dialogButton } from "./dialogs.js";
import { el } from "./dom.js";
import { fromLocalInput, toLocalInput } from "./timefmt.js";

function textControl(column, current) {
  const input = el("input", {
    type: "text",
    id: "filter-input",
    value: current || "",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: column.key === "user_name" ? 256 : 128,
  });
  return {
    nodes: [el("label", { for: "filter-input" }, `${column.label} contains`), input],
    focus: input,
    read: () => input.value.trim() || null,
  };
}

function typeControl(column, current) {
  const chosen = new Set(current || []);
  const boxes = SESSION_TYPES.map((type) =>
    el("input", { type: "checkbox", value: type.value, id: `filter-type-${type.value}`, checked: chosen.has(type.value) }),
  );
  const fieldset = el(
    "fieldset",
    { class: "choice" },
    el("legend", {}, `${column.label} is`),
    boxes.map((box, i) => el("label", { for: box.id, class: "choice-item" }, box, SESSION_TYPES[i].label)),
  );
  return {
    nodes: [fieldset],
    focus: boxes[0],
    read: () => boxes.filter((b) => b.checked).map((b) => b.value),
  };
}

function ipControl(column, current) {
  const input = el("input", {
    type: "text",
    id: "filter-input",
    value: current || "",
    placeholder: "203.0.113.7 or 10.0.0.0/8",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
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
  };
}

function rangeControl(column, current) {
  const from = el("input", { type: "datetime-local", id: "filter-from", value: toLocalInput(current && current.from) });
  const to = el("input", { type: "datetime-local", id: "filter-to", value: toLocalInput(current && current.to) });
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
  };
}

const CONTROLS = { text: textControl, type: typeControl, ip: ipControl, range: rangeControl };

/** Open the filter dialog of `column`; `onApply(value|null)` sets or clears the filter. */
export function openFilterDialog(modal, column, current, onApply) {
  const control = CONTROLS[column.filter](column, current);
  const apply = () => {
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
    initialFocus: control.focus,
  });
}
