// The Columns dialog: show or hide the six optional columns.
import { COLUMNS } from "./columns.js";
import { dialogButton } from "./dialogs.js";
import { el } from "./dom.js";

/** Open the Columns dialog; `onChange()` runs after each change (the choice is already saved). */
export function openColumnsDialog(modal, choice, onChange) {
  const boxes = COLUMNS.map((column) => {
    const box = el("input", {
      type: "checkbox",
      id: `column-${column.key}`,
      checked: choice.isVisible(column.key),
      disabled: column.required,
      onchange: (event) => {
        choice.set(column.key, event.target.checked);
        summary.textContent = choice.summary();
        onChange();
      },
    });
    return el(
      "label",
      { for: box.id, class: "choice-item" },
      box,
      column.label,
      column.required ? el("span", { class: "muted" }, " (always shown)") : null,
    );
  });
  const summary = el("p", { class: "muted", "aria-live": "polite" }, choice.summary());
  modal.open({
    title: "Columns",
    description: "Choose the columns of the Active User Sessions list. Name and Session Type are always shown.",
    body: [el("fieldset", { class: "choice" }, el("legend", { class: "visually-hidden" }, "Visible columns"), boxes), summary],
    actions: [dialogButton("Done", () => modal.close(), "button-primary")],
  });
}
