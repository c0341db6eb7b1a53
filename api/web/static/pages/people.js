// A person's page: topics they know (with evidence), sessions joined, entries credited, their opt-out.

import { ApiError } from "../api.js";
import { formatDate, h, icon, ICONS, useStylesheet } from "../dom.js";
import { describeError, kindLabel } from "../i18n.js";

function translated(t, key, fallback) {
  return t.has(key) ? t(key) : fallback;
}

export async function render(root, ctx) {
  const { api, t, lang, params } = ctx;
  useStylesheet("people");
  let person;
  try {
    person = await api.get(`/api/people/${encodeURIComponent(params.name)}`);
  } catch (error) {
    if (error instanceof ApiError && error.code === "person_not_found") {
      root.append(
        h(
          "section",
          { class: "card" },
          h("h1", {}, t("people.unknownTitle")),
          h("p", {}, t("people.unknown", { name: params.name })),
          h("a", { class: "button", href: "#/chat" }, t("nav.chat")),
        ),
      );
      return;
    }
    throw error;
  }

  root.append(
    h(
      "header",
      { class: "person-header" },
      h("div", { class: "person-avatar", "aria-hidden": "true" }, initials(person.name)),
      h(
        "div",
        {},
        h("h1", {}, person.name),
        h("p", { class: "muted" }, person.is_viewer ? t("people.yourPage") : t("people.intro")),
      ),
    ),
    suggestionsCard(person),
    h(
      "div",
      { class: "people-grid" },
      topicsCard(person.topics),
      entriesCard(person.entries),
    ),
    sessionsCard(person.sessions),
  );

  function suggestionsCard(current) {
    const status = h("p", { class: "muted", role: "status" });
    const describe = () =>
      current.opted_out ? t("people.optedOut", { name: current.name }) : t("people.optedIn", { name: current.name });
    status.textContent = describe();
    const children = [h("h2", { id: "people-suggestions" }, t("people.suggestions")), status];
    if (current.may_change_opt_out) {
      const toggle = h("input", {
        type: "checkbox",
        id: "people-suggest",
        checked: !current.opted_out,
        onChange: async () => {
          toggle.disabled = true;
          try {
            const saved = await api.put(`/api/people/${encodeURIComponent(current.name)}/suggestions`, {
              opted_out: !toggle.checked,
            });
            current.opted_out = saved.opted_out;
            status.textContent = describe();
          } catch (error) {
            toggle.checked = !current.opted_out;
            status.textContent = describeError(t, error);
          } finally {
            toggle.disabled = false;
          }
        },
      });
      children.push(
        h(
          "div",
          { class: "toggle" },
          toggle,
          h("label", { for: "people-suggest" }, current.is_viewer ? t("people.suggestMe") : t("people.suggestThem")),
        ),
      );
    }
    return h("section", { class: "card", "aria-labelledby": "people-suggestions" }, children);
  }

  function topicsCard(topics) {
    return h(
      "section",
      { class: "card", "aria-labelledby": "people-topics" },
      h("h2", { id: "people-topics" }, t("people.topics")),
      topics.length
        ? h(
            "ul",
            { class: "topic-list" },
            topics.map((topic) =>
              h(
                "li",
                {},
                h(
                  "details",
                  {},
                  h(
                    "summary",
                    {},
                    h("span", { class: "chip" }, topic.topic),
                    " ",
                    h(
                      "span",
                      { class: "muted" },
                      topic.source === "tag"
                        ? t("people.topicEntries", { count: topic.count })
                        : t("people.topicSessions", { count: topic.count }),
                    ),
                  ),
                  h(
                    "ul",
                    { class: "topic-evidence" },
                    topic.evidence.map((item) =>
                      h(
                        "li",
                        {},
                        h("span", { class: "badge" }, item.kind === "entry" ? t("people.entry") : t("people.session")),
                        " ",
                        item.title,
                        h("span", { class: "muted" }, ` · ${formatDate(item.date, lang)}`),
                      ),
                    ),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, t("people.noTopics")),
    );
  }

  function entriesCard(entries) {
    return h(
      "section",
      { class: "card", "aria-labelledby": "people-entries" },
      h("h2", { id: "people-entries" }, t("people.entries")),
      entries.length
        ? h(
            "ul",
            { class: "entry-list" },
            entries.map((entry) =>
              h(
                "li",
                { class: "entry" },
                h(
                  "h3",
                  {},
                  icon(ICONS.check),
                  " ",
                  entry.title,
                  " ",
                  h(
                    "span",
                    { class: entry.status === "approved" ? "badge success" : "badge warning" },
                    translated(t, `status.${entry.status}`, entry.status),
                  ),
                ),
                h("p", { lang: entry.language }, entry.practice),
                entry.tags.length ? h("ul", { class: "chips" }, entry.tags.map((tag) => h("li", { class: "chip" }, tag))) : null,
              ),
            ),
          )
        : h("p", { class: "empty" }, t("people.noEntries")),
    );
  }

  function sessionsCard(sessions) {
    return h(
      "section",
      { class: "card", "aria-labelledby": "people-sessions" },
      h("h2", { id: "people-sessions" }, t("people.sessions")),
      sessions.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "table" },
              h("caption", { class: "visually-hidden" }, t("people.sessions")),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", { scope: "col" }, t("people.date")),
                  h("th", { scope: "col" }, t("people.title")),
                  h("th", { scope: "col" }, t("people.format")),
                  h("th", { scope: "col" }, t("people.community")),
                  h("th", { scope: "col" }, t("people.role")),
                  h("th", { scope: "col" }, t("people.visibility")),
                ),
              ),
              h(
                "tbody",
                {},
                sessions.map((session) =>
                  h(
                    "tr",
                    {},
                    h("td", {}, formatDate(session.session_date, lang)),
                    h("td", {}, session.title),
                    h("td", {}, kindLabel(t, session.kind)),
                    h("td", {}, session.community),
                    h("td", {}, translated(t, `people.role.${session.role}`, session.role)),
                    h("td", {}, h("span", { class: "badge" }, translated(t, `visibility.${session.visibility}`, session.visibility))),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, t("people.noSessions")),
    );
  }
}

function initials(name) {
  return name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((word) => word[0].toUpperCase())
    .join("");
}
