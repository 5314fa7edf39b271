// Building elements. Text always goes in through textContent: data from the API is never markup.

/**
 * Create an element: el("button", {type: "button", class: "x", onclick: fn}, "text", child).
 * Attributes starting with "on" become listeners; `true`/`false` toggle boolean attributes;
 * strings and numbers among the children become text nodes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name === "checked" || name === "disabled" || name === "indeterminate") {
      node[name] = Boolean(value);
    } else if (name === "value") {
      node.value = value;
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

/** Append children (nodes, text, arrays of them; null/undefined/false skipped). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of `node`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** "1 session" / "3 sessions". */
export function plural(count, singular, pluralForm = `${singular}s`) {
  return `${count.toLocaleString()} ${count === 1 ? singular : pluralForm}`;
}

/** Show or hide with the `hidden` attribute. */
export function show(node, visible) {
  node.hidden = !visible;
}

/** Hand a Blob to the browser as a file download. */
export function downloadBlob(blob, filename) {
  const link = el("a", { href: URL.createObjectURL(blob), download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
