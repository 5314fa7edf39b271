// @ts-check
// Building elements. Text always goes in through textContent: data from the API is never markup.

/**
 * What `el` and `append` take as children: nodes, text, numbers, nested arrays of them;
 * null, undefined and false are skipped.
 * @typedef {Node | string | number | null | undefined | false | ChildList} Child
 * @typedef {readonly Child[]} ChildList
 */

/**
 * Attributes of `el`: listeners (`on*`), `class`, `dataset`, the `checked`/`disabled`/
 * `indeterminate`/`value` properties, boolean attributes (`true`) and plain attributes.
 * @typedef {Record<string, string | number | boolean | null | undefined | EventListener | Readonly<Record<string, string>>>} Attributes
 */

/** Printable Latin: text made only of it cannot change the direction of the text around it. */
const LATIN_ONLY = /^[\u0020-\u007e\u00a0-\u024f]*$/;

/**
 * What could end the isolate `isolated` opens, or leave it open: the explicit directional
 * embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and the paragraph
 * separators (U+0085, U+2029; and LF, CR, U+001C-U+001E, which records cannot hold but text the
 * admin types can), which end every embedding and isolate. `x\u2069\u202E` would
 * close the isolate at its U+2069 and lay the rest of the sentence out backwards.
 */
const ISOLATE_BREAKERS = /[\u202a-\u202e\u2066-\u2069\n\r\u001c-\u001e\u0085\u2029]/gu;

/**
 * `text` (a value from a record or typed by the admin) made safe to put inside a sentence: text
 * holding anything but printable Latin (a right-to-left script, a bidirectional control such
 * as U+202E, a line or paragraph separator) is wrapped in FIRST STRONG ISOLATE ... POP
 * DIRECTIONAL ISOLATE, so it is shown in its own direction and cannot reorder the words
 * around it ("Sign out user X everywhere?"); Latin text is left as it is. A control that could
 * end or unbalance that isolate is shown as `[U+XXXX]` instead of acting: the sentence says
 * which control the value holds.
 * @param {string} text
 */
export function isolated(text) {
  return LATIN_ONLY.test(text) ? text : `\u2068${isolable(text)}\u2069`;
}

/**
 * `text` with each control that could end or unbalance an isolate around it shown as
 * `[U+XXXX]` instead of acting: for a value in an element isolated by CSS (`unicode-bidi:
 * isolate`) beside other text, which Chromium lets a U+2069 or a paragraph separator of the
 * value's own end as surely as `isolated`'s.
 * @param {string} text
 */
export function isolable(text) {
  return text.replace(ISOLATE_BREAKERS, (c) => `[${codePoint(c)}]`);
}

/**
 * A character as `U+XXXX`.
 * @param {string} c
 */
function codePoint(c) {
  return `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Characters drawn as nothing, or as nothing in some browsers: format characters such as
 * U+202E and U+200B, line and paragraph separators, controls (the contract refuses C0 and DEL,
 * not C1: U+0085, U+009B), and Unicode's default ignorables (the Hangul fillers U+115F and
 * U+3164, drawn as blank space; the combining grapheme joiner U+034F; variation selectors,
 * which an emoji may carry: such a name is flagged too), and U+2800 BRAILLE PATTERN BLANK.
 */
const HIDDEN = /[\p{Cf}\p{Zl}\p{Zp}\p{Cc}\p{Default_Ignorable_Code_Point}\u2800]/gu;

/**
 * The characters of `text` that are drawn as nothing, as `U+XXXX` (each once, in order): an
 * override or an invisible character can make one name or id look like another.
 * @param {string} text
 */
export function hiddenCharacters(text) {
  return [...new Set(text.match(HIDDEN) ?? [])].map(codePoint);
}

/**
 * Alphabets with letters that look alike (Latin `a`, Cyrillic U+0430, Greek U+03B1; Latin `S`,
 * Cherokee U+13DA): the scripts Unicode's confusables (UTS #39) pair most. A word that mixes
 * two of them is how one name imitates another; a name in one of them alone, or mixing one of
 * them with a script that shares no look-alikes (`Tokyo東京`), is not flagged.
 * @type {readonly [string, RegExp][]}
 */
export const LOOK_ALIKE_SCRIPTS = [
  ["Latin", /\p{Script=Latin}/u],
  ["Cyrillic", /\p{Script=Cyrillic}/u],
  ["Greek", /\p{Script=Greek}/u],
  ["Armenian", /\p{Script=Armenian}/u],
  ["Cherokee", /\p{Script=Cherokee}/u],
];

/** @param {string} letter */
function lookAlikeScript(letter) {
  for (const [name, pattern] of LOOK_ALIKE_SCRIPTS) if (pattern.test(letter)) return name;
  return null;
}

/**
 * What `text` mixes within one word (words split at white space) of the look-alike alphabets:
 * the alphabets mixed, and each letter outside its word's main alphabet as `U+XXXX Script`
 * (each once, in order): `Paul` with a Cyrillic U+0430 for its `a` gives ["Latin", "Cyrillic"] and
 * ["U+0430 Cyrillic"]. Empty lists for text that mixes none.
 * @param {string} text
 * @returns {{scripts: string[], odd: string[]}}
 */
export function mixedScripts(text) {
  const scripts = new Set();
  const odd = new Set();
  for (const word of text.split(/\s+/u)) {
    /** @type {[string, string][]} */
    const letters = [];
    /** @type {Map<string, number>} */
    const counts = new Map();
    for (const letter of word) {
      const script = lookAlikeScript(letter);
      if (script === null) continue;
      letters.push([letter, script]);
      counts.set(script, (counts.get(script) ?? 0) + 1);
    }
    if (counts.size < 2) continue;
    // the main alphabet: the most letters, the first of them on a tie
    const main = [...counts.entries()].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
    for (const [script] of counts) scripts.add(script);
    for (const [letter, script] of letters) {
      if (script !== main) odd.add(`${codePoint(letter)} ${script}`);
    }
  }
  const order = LOOK_ALIKE_SCRIPTS.map(([name]) => name);
  return { scripts: order.filter((name) => scripts.has(name)), odd: [...odd] };
}

/**
 * Create an element: el("button", {type: "button", class: "x", onclick: fn}, "text", child).
 * Attributes starting with "on" become listeners; `true`/`false` toggle boolean attributes;
 * strings and numbers among the children become text nodes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attributes} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = String(value);
    } else if (name === "dataset") {
      if (typeof value === "object") Object.assign(node.dataset, value);
    } else if ((name === "checked" || name === "indeterminate") && node instanceof HTMLInputElement) {
      node[name] = Boolean(value);
    } else if (name === "disabled" && (node instanceof HTMLInputElement || node instanceof HTMLButtonElement)) {
      node.disabled = Boolean(value);
    } else if (name === "value" && node instanceof HTMLInputElement) {
      node.value = String(value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

/**
 * Append children (nodes, text, arrays of them; null/undefined/false skipped).
 * @template {Node & ParentNode} N
 * @param {N} node
 * @param {ChildList} children
 * @returns {N}
 */
export function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * Replace every child of `node`.
 * @template {Node & ParentNode} N
 * @param {N} node
 * @param {...Child} children
 * @returns {N}
 */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/**
 * "1 session" / "3 sessions".
 * @param {number} count
 * @param {string} singular
 */
export function plural(count, singular, pluralForm = `${singular}s`) {
  return `${count.toLocaleString()} ${count === 1 ? singular : pluralForm}`;
}

/** Show or hide with the `hidden` attribute. */
export function show(/** @type {HTMLElement} */ node, /** @type {boolean} */ visible) {
  node.hidden = !visible;
}

/** The input element a listener on it was called for. */
export function inputOf(/** @type {Event} */ event) {
  const target = event.currentTarget;
  if (!(target instanceof HTMLInputElement)) throw new TypeError("expected an input element");
  return target;
}

/** The element with this id; a page without it is a broken page. */
export function byId(/** @type {string} */ id) {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the page has no #${id}`);
  return node;
}

/**
 * The element with this id, which must be of `type` (an input, a button, ...).
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{new (): T, prototype: T}} type
 * @returns {T}
 */
export function byIdOf(id, type) {
  const node = byId(id);
  if (!(node instanceof type)) throw new TypeError(`#${id} is not a ${type.name}`);
  return node;
}

/**
 * Hand a Blob to the browser as a file download.
 * @param {Blob} blob
 * @param {string} filename
 */
export function downloadBlob(blob, filename) {
  const link = el("a", { href: URL.createObjectURL(blob), download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
