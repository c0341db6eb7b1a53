// Languages and dictionaries: French or English, one dictionary file per page plus the common one.

import { ApiError } from "./api.js";

export const LANGUAGES = ["fr", "en"];
const STORAGE_KEY = "lang";
const loaded = new Map();

/** The reader's language: their choice if they made one, else the browser's (French for fr*, else English). */
export function preferredLanguage() {
  const chosen = localStorage.getItem(STORAGE_KEY);
  if (LANGUAGES.includes(chosen)) {
    return chosen;
  }
  const browser = (navigator.languages && navigator.languages[0]) || navigator.language || "";
  return browser.toLowerCase().startsWith("fr") ? "fr" : "en";
}

/** Remember the reader's choice and mark up the document with it. */
export function chooseLanguage(lang) {
  localStorage.setItem(STORAGE_KEY, lang);
  document.documentElement.lang = lang;
}

/** A dictionary file (`/static/i18n/<name>.json`), fetched once. */
export function loadDictionary(name) {
  if (!loaded.has(name)) {
    const request = fetch(`/static/i18n/${name}.json`, { credentials: "same-origin" }).then((response) => {
      if (!response.ok) {
        throw new Error(`no dictionary ${name} (${response.status})`);
      }
      return response.json();
    });
    request.catch(() => loaded.delete(name));
    loaded.set(name, request);
  }
  return loaded.get(name);
}

/** A translator over dictionaries in priority order: `t(key, {name: "Julie"})`; unknown keys show as is. */
export function translator(dictionaries, lang) {
  const lookup = (key) => {
    for (const dictionary of dictionaries) {
      const entries = dictionary[lang] || {};
      if (Object.hasOwn(entries, key)) {
        return entries[key];
      }
    }
    return undefined;
  };
  const t = (key, vars) => {
    const text = lookup(key);
    if (text === undefined) {
      console.warn(`missing translation: ${key} (${lang})`);
      return key;
    }
    return text.replace(/\{(\w+)\}/g, (whole, name) =>
      vars && Object.hasOwn(vars, name) ? String(vars[name]) : whole,
    );
  };
  t.has = (key) => lookup(key) !== undefined;
  return t;
}

/** The reader-facing sentence for an error: the translated `error.<code>` of an API error, else the generic one. */
export function describeError(t, error) {
  const key = error instanceof ApiError ? `error.${error.code}` : "";
  return key && t.has(key) ? t(key) : t("error.unknown");
}

// A note's format in the current language (the raw value when the dictionaries have none for it).
export function kindLabel(t, kind) {
  const labels = {
    circle: t("kind.circle"),
    pair: t("kind.pair"),
    mentoring: t("kind.mentoring"),
    other: t("kind.other"),
  };
  return labels[kind] || kind;
}
