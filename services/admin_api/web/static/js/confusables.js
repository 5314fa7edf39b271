// @ts-check
// Words written wholly in another alphabet that read as Latin (UTS #39 "whole-script confusables").
import { el, hiddenCharacters, isolated, LOOK_ALIKE_SCRIPTS, mixedScripts } from "./dom.js";

/**
 * Letters of the alphabets that share look-alikes with Latin (Cyrillic, Greek, Armenian,
 * Cherokee: the ones `mixedScripts` in dom.js watches) which Unicode's confusables data maps to
 * one Latin letter: UTS #39 `confusables.txt` 14.0.0 (2021-05-29), every line whose source is
 * one letter of those scripts and whose prototype is one ASCII letter. A word made of them
 * alone can be drawn exactly as a Latin word: Cyrillic U+0440 U+0430 U+0443 as `pay`.
 * The data: © 2021 Unicode®, Inc., under the Unicode License (license.txt at unicode.org).
 * @type {ReadonlyMap<string, string>}
 */
const READS_AS = new Map(
  Object.entries({
  // Cyrillic
  "\u0405": "S", "\u0406": "l", "\u0408": "J", "\u0410": "A", "\u0412": "B", "\u0415": "E",
  "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O", "\u0420": "P", "\u0421": "C",
  "\u0422": "T", "\u0423": "Y", "\u0425": "X", "\u042c": "b", "\u0430": "a", "\u0433": "r",
  "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y", "\u0445": "x",
  "\u0455": "s", "\u0456": "i", "\u0458": "j", "\u0461": "w", "\u0474": "V", "\u0475": "v",
  "\u04ae": "Y", "\u04af": "y", "\u04bb": "h", "\u04bd": "e", "\u04c0": "l", "\u04cf": "i",
  "\u0501": "d", "\u050c": "G", "\u051b": "q", "\u051c": "W", "\u051d": "w", "\ua647": "i",
  // Greek
  "\u037f": "J", "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H",
  "\u0399": "l", "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P",
  "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X", "\u03b1": "a", "\u03b3": "y", "\u03b9": "i",
  "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c3": "o", "\u03c5": "u", "\u03dc": "F",
  "\u03f3": "j", "\u03fa": "M", "\u1d26": "r",
  // Armenian
  "\u054d": "U", "\u054f": "S", "\u0555": "O", "\u0561": "w", "\u0563": "q", "\u0566": "q",
  "\u0570": "h", "\u0578": "n", "\u057c": "n", "\u057d": "u", "\u0581": "g", "\u0584": "f",
  "\u0585": "o",
  // Cherokee
  "\u13a0": "D", "\u13a1": "R", "\u13a2": "T", "\u13a5": "i", "\u13a9": "Y", "\u13aa": "A",
  "\u13ab": "J", "\u13ac": "E", "\u13b3": "W", "\u13b7": "M", "\u13bb": "H", "\u13bd": "Y",
  "\u13c0": "G", "\u13c2": "h", "\u13c3": "Z", "\u13cf": "b", "\u13d2": "R", "\u13d4": "W",
  "\u13d5": "S", "\u13d9": "V", "\u13da": "S", "\u13de": "L", "\u13df": "C", "\u13e2": "P",
  "\u13e6": "K", "\u13e7": "d", "\u13f3": "G", "\u13f4": "B", "\uab75": "i", "\uab81": "r",
  "\uab83": "w", "\uab93": "z", "\uaba9": "v", "\uabaa": "s", "\uabaf": "c",
  }),
);

/** The look-alike alphabets `mixedScripts` watches, but Latin: those a word can imitate it in. */
const SCRIPTS = LOOK_ALIKE_SCRIPTS.filter(([name]) => name !== "Latin");

/**
 * The words of `text` (split at white space) whose letters are all of one of those alphabets,
 * at least two of them, and every one drawn like a Latin letter: each with its alphabet and
 * what it reads as (`{word: "рау", script: "Cyrillic", reads: "pay"}`). A word holding any
 * letter without a Latin look-alike (`Иван`), a Latin letter (that is `mixedScripts`' case),
 * or a single letter (the Russian conjunction `с`) is not one. Characters other than letters
 * (digits, `.`, `_`) are read as they are.
 * @param {string} text
 * @returns {{word: string, script: string, reads: string}[]}
 */
export function latinLookAlikes(text) {
  /** @type {{word: string, script: string, reads: string}[]} */
  const words = [];
  for (const word of text.split(/\s+/u)) {
    const letters = [...word].filter((c) => /\p{L}/u.test(c));
    if (letters.length < 2) continue;
    const alphabet = SCRIPTS.find(([, pattern]) => pattern.test(letters[0]));
    if (alphabet === undefined) continue;
    const [script, pattern] = alphabet;
    if (!letters.every((c) => pattern.test(c) && READS_AS.has(c))) continue;
    const reads = [...word].map((c) => READS_AS.get(c) ?? c).join("");
    if (!words.some((w) => w.word === word)) words.push({ word, script, reads });
  }
  return words;
}

/**
 * The warnings a value that may imitate another gets wherever it is listed: "Hidden
 * characters", "Mixed scripts", "Looks Latin", each a badge whose title says what `subject`
 * ("The name or user ID", "The admin user ID") holds, and, with `openHint`, that the
 * session's detail shows it. Empty when it holds none of them.
 * @param {string} text
 * @param {string} subject
 * @param {{openHint?: boolean}} [options]
 * @returns {HTMLElement[]}
 */
export function lookAlikeBadges(text, subject, { openHint = true } = {}) {
  const badge = (/** @type {string} */ label, /** @type {string} */ title) => el("span", { class: "badge badge-warn", title }, label);
  const hint = (/** @type {string} */ what) => (openHint ? `: open the session to see ${what}` : "");
  return [
    hiddenCharacters(text).length ? badge("Hidden characters", `${subject} holds characters that are not shown${hint("which")}`) : null,
    mixedScripts(text).scripts.length ? badge("Mixed scripts", `${subject} mixes look-alike alphabets in one word${hint("which letters")}`) : null,
    latinLookAlikes(text).length
      ? badge("Looks Latin", `${subject} has a word written in another alphabet whose letters all look Latin${hint("how it reads")}`)
      : null,
  ].filter((b) => b !== null);
}

/**
 * The sentences warning that a value holds characters that are not shown (an override or an
 * invisible character), mixes look-alike alphabets in one word (a Cyrillic U+0430 in a Latin
 * name), or has a word in another alphabet that reads as Latin (Cyrillic `рау` for `pay`): each
 * can make one name look like another (nothing is removed: the value is what the platform
 * sent). Each with its kind ("Hidden characters", ...), for the session's detail and for a
 * confirmation that names the value.
 * @param {[string, string | null | undefined][]} values each with its label ("The user ID")
 * @returns {[string, string][]}
 */
export function lookAlikeWarnings(values) {
  /** @type {[string, string][]} */
  const warnings = [];
  for (const [label, value] of values) {
    const points = hiddenCharacters(value ?? "");
    if (points.length === 0) continue;
    warnings.push(["Hidden characters", `${label} holds characters that are not shown (${points.join(", ")}): it may not be what it looks like.`]);
  }
  for (const [label, value] of values) {
    const { scripts, odd } = mixedScripts(value ?? "");
    if (scripts.length === 0) continue;
    warnings.push(["Mixed scripts", `${label} mixes ${scripts.join(" and ")} letters in one word (${odd.join(", ")}): it may imitate another name.`]);
  }
  for (const [label, value] of values) {
    for (const { word, script, reads } of latinLookAlikes(value ?? "")) {
      warnings.push([
        "Looks Latin",
        `${label} has a word in ${script} letters that all look Latin: ${isolated(word)} reads as ${isolated(reads)}; it may imitate another name.`,
      ]);
    }
  }
  return warnings;
}
