// The shell: hash routes, the signed-in user, the language, the role-aware header; pages load on demand.

import { api, ApiError, setCsrfToken } from "./api.js";
import { h, icon, ICONS } from "./dom.js";
import { chooseLanguage, describeError, LANGUAGES, loadDictionary, preferredLanguage, translator } from "./i18n.js";

const NEXT_KEY = "compagnon.next";
const HOME = "#/chat";
const UPLOADERS = ["facilitator", "hr", "admin"];
// Reviewing is HR's (Viewer.may_review); the programme's measures are for HR and admins.
const REVIEWERS = ["hr"];
const MEASURE_READERS = ["hr", "admin"];

// Each page: who may open it (null: everyone signed in), and its navigation label.
const PAGES = {
  login: { public: true },
  chat: { roles: null, nav: "nav.chat" },
  upload: { roles: UPLOADERS, nav: "nav.upload" },
  review: { roles: REVIEWERS, nav: "nav.review" },
  dashboard: { roles: MEASURE_READERS, nav: "nav.dashboard" },
  people: { roles: null },
};

const state = { lang: preferredLanguage(), user: null, cleanup: null, rendering: 0 };
const header = document.getElementById("topbar");
const main = document.getElementById("main");
const announcer = document.getElementById("announcer");
const skipLink = document.getElementById("skip-link");

function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const page = parts[0] || "";
  if (page === "people" && parts[1]) {
    return { page, params: { name: decodeURIComponent(parts.slice(1).join("/")) } };
  }
  return { page, params: {} };
}

function mayOpen(page, user) {
  const rule = PAGES[page];
  return rule.roles === null || rule.roles.includes(user.role);
}

function navigate(hash) {
  if (window.location.hash === hash) {
    route();
  } else {
    window.location.hash = hash;
  }
}

async function dictionaries(page) {
  const names = page === "common" ? ["common"] : ["common", page];
  const [common, own] = await Promise.all(names.map(loadDictionary));
  return own ? [own, common] : [common];
}

function renderHeader(t, current) {
  const user = state.user;
  const links = [];
  if (user) {
    for (const [page, rule] of Object.entries(PAGES)) {
      if (rule.nav && mayOpen(page, user)) {
        links.push({ hash: `#/${page}`, label: t(rule.nav), page });
      }
    }
    if (user.person) {
      links.push({ hash: `#/people/${encodeURIComponent(user.person)}`, label: t("nav.myPage"), page: "me" });
    }
  }
  const here = current.page === "people" && user && current.params.name === user.person ? "me" : current.page;
  const switcher = h(
    "div",
    { class: "lang-switch", role: "group", "aria-label": t("nav.language") },
    LANGUAGES.map((lang) =>
      h(
        "button",
        {
          type: "button",
          class: "lang-option",
          lang,
          "aria-pressed": String(lang === state.lang),
          "aria-label": t(`nav.language.${lang}`),
          onClick: () => switchLanguage(lang),
        },
        lang.toUpperCase(),
      ),
    ),
  );
  header.replaceChildren(
    h(
      "div",
      { class: "topbar-inner" },
      h("a", { class: "brand", href: user ? HOME : "#/login" }, brandMark(), h("span", {}, t("app.name"))),
      links.length
        ? h(
            "nav",
            { class: "main-nav", "aria-label": t("nav.label") },
            h(
              "ul",
              {},
              links.map((link) =>
                h(
                  "li",
                  {},
                  h(
                    "a",
                    { href: link.hash, "aria-current": link.page === here ? "page" : null, dataset: { page: link.page } },
                    link.label,
                  ),
                ),
              ),
            ),
          )
        : null,
      h(
        "div",
        { class: "topbar-tools" },
        switcher,
        user
          ? h(
              "div",
              { class: "who" },
              h("span", { class: "who-name" }, user.person || user.login),
              h("span", { class: "badge" }, t(`role.${user.role}`)),
              h("button", { type: "button", class: "button small", onClick: signOut }, t("nav.logout")),
            )
          : null,
      ),
    ),
  );
}

function brandMark() {
  const mark = icon(["M4 5h16v10H8l-4 4z", "M9 10h6"], { size: 24 });
  mark.classList.add("brand-mark");
  return mark;
}

async function signOut() {
  try {
    await api.post("/api/auth/logout");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) {
      throw error;
    }
  }
  setCsrfToken(null);
  state.user = null;
  navigate("#/login");
}

function switchLanguage(lang) {
  if (lang === state.lang) {
    return;
  }
  state.lang = lang;
  chooseLanguage(lang);
  route();
}

function focusHeading() {
  const heading = main.querySelector("h1");
  const target = heading || main;
  if (!target.hasAttribute("tabindex")) {
    target.setAttribute("tabindex", "-1");
  }
  target.focus({ preventScroll: false });
  if (heading) {
    document.title = `${heading.textContent} · Compagnon`;
  }
}

function errorCard(t, error) {
  const code = error instanceof ApiError ? error.code : "unknown";
  return h(
    "section",
    { class: "card error-card", role: "alert" },
    h("h1", {}, t("common.errorTitle")),
    h("p", { class: "error" }, describeError(t, error)),
    code !== "unknown" ? h("p", { class: "muted" }, code) : null,
    h("button", { type: "button", class: "button", onClick: () => route() }, t("common.retry")),
  );
}

async function route() {
  const ticket = ++state.rendering;
  const current = parseRoute(window.location.hash);
  if (!PAGES[current.page]) {
    navigate(state.user ? HOME : "#/login");
    return;
  }
  if (!state.user && !PAGES[current.page].public) {
    try {
      state.user = await api.get("/api/auth/me");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        sessionStorage.setItem(NEXT_KEY, window.location.hash);
        navigate("#/login");
        return;
      }
      throw error;
    }
  }
  if (current.page === "login" && state.user) {
    navigate(HOME);
    return;
  }
  chooseLanguage(state.lang);
  const allowed = PAGES[current.page].public || mayOpen(current.page, state.user);
  const [dicts, module] = await Promise.all([
    dictionaries(allowed ? current.page : "common"),
    allowed ? import(`./pages/${current.page}.js`) : null,
  ]);
  if (ticket !== state.rendering) {
    return;
  }
  const t = translator(dicts, state.lang);
  if (state.cleanup) {
    state.cleanup();
    state.cleanup = null;
  }
  renderHeader(t, current);
  skipLink.textContent = t("nav.skip");
  announcer.textContent = "";
  main.replaceChildren();
  main.dataset.page = current.page;
  if (!allowed) {
    main.append(
      h(
        "section",
        { class: "card not-allowed", role: "alert" },
        h("h1", {}, t("common.notAllowed")),
        h("p", {}, t("common.notAllowedDetail")),
        h("a", { class: "button", href: HOME }, t("nav.chat")),
      ),
    );
    focusHeading();
    return;
  }
  const ctx = {
    api,
    t,
    lang: state.lang,
    user: state.user,
    navigate,
    params: current.params,
    signedIn(user) {
      state.user = user;
      const next = sessionStorage.getItem(NEXT_KEY);
      sessionStorage.removeItem(NEXT_KEY);
      navigate(next && next !== "#/login" ? next : HOME);
    },
    announce(text) {
      announcer.textContent = text;
    },
  };
  try {
    const cleanup = await module.render(main, ctx);
    if (ticket === state.rendering && typeof cleanup === "function") {
      state.cleanup = cleanup;
    } else if (typeof cleanup === "function") {
      cleanup();
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      return;
    }
    console.error(error);
    main.replaceChildren(errorCard(t, error));
  }
  if (ticket === state.rendering) {
    focusHeading();
  }
}

window.addEventListener("hashchange", () => route());
window.addEventListener("compagnon:signed-out", () => {
  state.user = null;
  if (parseRoute(window.location.hash).page !== "login") {
    sessionStorage.setItem(NEXT_KEY, window.location.hash);
    navigate("#/login");
  }
});
skipLink.addEventListener("click", (event) => {
  event.preventDefault();
  focusHeading();
});

chooseLanguage(state.lang);
route();
