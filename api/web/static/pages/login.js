// Sign in: login and password; the session cookie is set by the API, the CSRF token kept for this tab.

import { ApiError, setCsrfToken } from "../api.js";
import { h, useStylesheet } from "../dom.js";
import { describeError } from "../i18n.js";

export async function render(root, ctx) {
  const { api, t } = ctx;
  useStylesheet("login");
  const message = h("p", { id: "login-error", class: "error", role: "alert" });
  const login = h("input", {
    id: "login-name",
    name: "login",
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
    maxlength: "100",
  });
  const password = h("input", {
    id: "login-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
    maxlength: "1024",
  });
  const submit = h("button", { type: "submit", class: "button primary" }, t("login.submit"));

  async function signIn(event) {
    event.preventDefault();
    message.textContent = "";
    if (!login.value.trim() || !password.value) {
      message.textContent = t("login.missing");
      (login.value.trim() ? password : login).focus();
      return;
    }
    submit.disabled = true;
    try {
      const session = await api.post("/api/auth/login", { login: login.value.trim(), password: password.value });
      setCsrfToken(session.csrf_token);
      ctx.signedIn(await api.get("/api/auth/me"));
    } catch (error) {
      message.textContent =
        error instanceof ApiError && error.status === 401 ? t("login.wrong") : describeError(t, error);
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
    }
  }

  root.append(
    h(
      "section",
      { class: "card login-card" },
      h("h1", {}, t("login.title")),
      h("p", { class: "muted" }, t("login.intro")),
      h(
        "form",
        { class: "login-form", novalidate: true, onSubmit: signIn, "aria-describedby": "login-error" },
        h("div", { class: "field" }, h("label", { for: "login-name" }, t("login.login")), login),
        h("div", { class: "field" }, h("label", { for: "login-password" }, t("login.password")), password),
        message,
        submit,
      ),
    ),
  );
}
