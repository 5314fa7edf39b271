// The eight columns of the Active User Sessions list, and which of them the admin shows.
const STORAGE_KEY = "sessionControl.columns.v1";

export const COLUMNS = [
  { key: "user_name", label: "Name", required: true, filter: "text" },
  { key: "session_type", label: "Session Type", required: true, filter: "type" },
  { key: "session_id", label: "Session ID", required: false, filter: "text" },
  { key: "ip_address", label: "IP Address", required: false, filter: "ip" },
  { key: "created_at", label: "Created", required: false, filter: "range", range: "created" },
  { key: "last_activity_at", label: "Last Activity", required: false, filter: "range", range: "last_activity" },
  { key: "expires_at", label: "Expires", required: false, filter: "range", range: "expires" },
  { key: "device", label: "Device", required: false, filter: "text" },
];

export const SESSION_TYPES = [
  { value: "browser", label: "Browser" },
  { value: "mobile", label: "Mobile" },
];

/** The display label of a session type. */
export function typeLabel(value) {
  const known = SESSION_TYPES.find((t) => t.value === value);
  return known ? known.label : String(value);
}

/** Which columns are shown; saved in localStorage so the choice survives reloads. */
export class ColumnChoice {
  constructor(storage = window.localStorage) {
    this.storage = storage;
    this.hidden = new Set();
    try {
      const saved = JSON.parse(storage.getItem(STORAGE_KEY) || "null");
      if (saved && Array.isArray(saved.hidden)) {
        for (const key of saved.hidden) {
          const column = COLUMNS.find((c) => c.key === key);
          if (column && !column.required) this.hidden.add(key);
        }
      }
    } catch {
      this.hidden.clear();
    }
  }

  isVisible(key) {
    return !this.hidden.has(key);
  }

  /** Show or hide an optional column; the two required ones always stay. */
  set(key, visible) {
    const column = COLUMNS.find((c) => c.key === key);
    if (!column || column.required) return;
    if (visible) this.hidden.delete(key);
    else this.hidden.add(key);
    this.storage.setItem(STORAGE_KEY, JSON.stringify({ hidden: [...this.hidden] }));
  }

  visibleColumns() {
    return COLUMNS.filter((c) => this.isVisible(c.key));
  }

  /** "6 Columns Selected of 8". */
  summary() {
    return `${this.visibleColumns().length} Columns Selected of ${COLUMNS.length}`;
  }
}
