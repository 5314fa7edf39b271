// @ts-check
// One modal dialog at a time: role="dialog", focus kept inside, Escape closes, focus returns.
import { el, replaceChildren } from "./dom.js";

/** @typedef {import("./dom.js").Child} Child */

/**
 * What a dialog shows.
 * @typedef {object} DialogContent
 * @property {string} title
 * @property {string | null} [description]
 * @property {Child[]} [body]
 * @property {HTMLButtonElement[]} [actions]
 * @property {HTMLElement | null} [initialFocus]
 * @property {(() => void) | null} [onClose]
 * @property {boolean} [wide]
 */

const FOCUSABLE =
  'button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export class Modal {
  /** @param {HTMLDialogElement} dialog */
  constructor(dialog) {
    this.dialog = dialog;
    /** @type {HTMLElement | null} */
    this.opener = null;
    /** @type {(() => void) | null} */
    this.onClose = null;
    // Escape fires "cancel": close through our own path so focus goes back to the opener.
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.close();
    });
    dialog.addEventListener("keydown", (event) => this.trapTab(event));
    document.addEventListener("focusin", (event) => {
      if (this.dialog.open && !(event.target instanceof Node && this.dialog.contains(event.target))) this.focusFirst();
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  /**
   * Show a dialog: {title, body: [nodes], actions: [buttons], initialFocus, onClose, wide}.
   * Returns the dialog element.
   * @param {DialogContent} content
   */
  open({ title, description = null, body = [], actions = [], initialFocus = null, onClose = null, wide = false }) {
    if (this.dialog.open) this.close();
    this.opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    this.onClose = onClose;
    this.dialog.className = wide ? "modal modal-wide" : "modal";
    const descriptionNode = description ? el("p", { id: "modal-description", class: "modal-description" }, description) : null;
    if (descriptionNode) this.dialog.setAttribute("aria-describedby", "modal-description");
    else this.dialog.removeAttribute("aria-describedby");
    replaceChildren(
      this.dialog,
      el("h2", { id: "modal-title", class: "modal-title" }, title),
      descriptionNode,
      el("div", { class: "modal-body" }, body),
      el("div", { class: "modal-actions" }, actions),
    );
    this.dialog.showModal();
    (initialFocus || this.focusables()[0] || this.dialog).focus();
    return this.dialog;
  }

  /** Close the dialog and give focus back to whatever opened it. */
  close() {
    if (!this.dialog.open) return;
    this.dialog.close();
    const onClose = this.onClose;
    this.onClose = null;
    if (this.opener && this.opener.isConnected) this.opener.focus();
    this.opener = null;
    if (onClose) onClose();
  }

  /** @returns {HTMLElement[]} */
  focusables() {
    return [...this.dialog.querySelectorAll(FOCUSABLE)].filter(
      /** @returns {node is HTMLElement} */ (node) => node instanceof HTMLElement && !node.closest("[hidden]"),
    );
  }

  focusFirst() {
    (this.focusables()[0] || this.dialog).focus();
  }

  /** @param {KeyboardEvent} event */
  trapTab(event) {
    if (event.key !== "Tab") return;
    const nodes = this.focusables();
    if (nodes.length === 0) {
      event.preventDefault();
      return;
    }
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }
}

/**
 * A dialog button.
 * @param {string} label
 * @param {() => void} onclick
 * @param {string} kind an extra class (button-primary, button-danger)
 */
export function dialogButton(label, onclick, kind = "") {
  return el("button", { type: "button", class: `button ${kind}`.trim(), onclick }, label);
}
