// Chat: ask in French or English, the cited answer streams in; sources, people who know, feedback, history.

import { ApiError } from "../api.js";
import { formatDate, h, icon, ICONS, useStylesheet } from "../dom.js";
import { describeError, kindLabel } from "../i18n.js";

const MARKER = /\[(\d+)\]/g;
const HISTORY_LIMIT = 30;

/** The passage of a source with the cited span located in it: [before, quote, after]. */
export function locateQuote(source, citation) {
  const text = source ? source.text : citation.quote;
  const offset = source ? citation.start - source.start : 0;
  if (offset >= 0 && text.slice(offset, offset + citation.quote.length) === citation.quote) {
    return [text.slice(0, offset), citation.quote, text.slice(offset + citation.quote.length)];
  }
  const found = text.indexOf(citation.quote);
  if (found >= 0) {
    return [text.slice(0, found), citation.quote, text.slice(found + citation.quote.length)];
  }
  return ["", citation.quote, ""];
}

export async function render(root, ctx) {
  const { api, t, lang } = ctx;
  useStylesheet("chat");
  const answers = new Map();
  let controller = null;

  const question = h("textarea", {
    id: "chat-question",
    name: "question",
    rows: "3",
    maxlength: "2000",
    required: true,
    "aria-describedby": "chat-question-hint",
  });
  const send = h("button", { type: "submit", class: "button primary" }, icon(ICONS.send), t("chat.send"));
  const formError = h("p", { class: "error", role: "alert" });
  const result = h("section", { class: "chat-result", "aria-live": "polite", "aria-label": t("chat.answerRegion") });
  const historyList = h("ol", { class: "history-list" });
  const dialog = sourceDialog(t);

  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  const form = h(
    "form",
    { class: "card ask-form", onSubmit: (event) => ask(event) },
    h(
      "div",
      { class: "field" },
      h("label", { for: "chat-question" }, t("chat.questionLabel")),
      question,
      h("span", { id: "chat-question-hint", class: "hint" }, t("chat.questionHint")),
    ),
    formError,
    h("div", { class: "toolbar" }, send),
  );

  root.append(
    h("h1", {}, t("chat.title")),
    h(
      "div",
      { class: "chat-layout" },
      h("div", { class: "chat-main" }, form, result),
      h(
        "aside",
        { class: "card history", "aria-labelledby": "history-title" },
        h("h2", { id: "history-title" }, icon(ICONS.history), t("chat.history")),
        historyList,
      ),
    ),
    dialog.element,
  );

  async function ask(event) {
    event.preventDefault();
    const text = question.value.trim();
    formError.textContent = "";
    if (!text) {
      formError.textContent = t("chat.empty");
      question.focus();
      return;
    }
    if (controller) {
      controller.abort();
    }
    controller = new AbortController();
    const state = { question: text, id: null, language: lang, abstained: false, claims: [], sources: [] };
    state.citations = [];
    state.suggestions = null;
    const view = answerView(state);
    result.replaceChildren(view.element);
    result.setAttribute("aria-busy", "true");
    send.disabled = true;
    try {
      await api.stream(
        "/api/ask/stream",
        { question: text },
        (name, data) => {
          if (name === "answer") {
            state.id = data.question_id;
            state.language = data.language;
            state.abstained = data.abstained;
            view.started();
          } else if (name === "claim") {
            state.claims.push(data);
            view.addClaim(data);
          } else if (name === "sources") {
            state.sources = data;
          } else if (name === "citations") {
            state.citations = data;
            view.citationsReady();
          } else if (name === "suggestions") {
            state.suggestions = data;
            view.showSuggestions();
          } else if (name === "done") {
            answers.set(state.id, state);
            view.finished();
          }
        },
        { signal: controller.signal },
      );
      ctx.announce(state.abstained ? t("chat.abstainedAnnounce") : t("chat.answeredAnnounce"));
      question.value = "";
      loadHistory();
    } catch (error) {
      if (error.name === "AbortError") {
        return;
      }
      if (error instanceof ApiError && error.status === 401) {
        return;
      }
      view.failed(describeError(t, error));
    } finally {
      result.removeAttribute("aria-busy");
      send.disabled = false;
    }
  }

  function answerView(state) {
    const status = h("p", { class: "status muted" }, t("chat.searching"));
    const body = h("div", { class: "answer-body" });
    const after = h("div", { class: "answer-after" });
    const people = h("div", { class: "people" });
    const markers = [];
    const element = h(
      "article",
      { class: "card answer", "aria-labelledby": "answer-question" },
      h("h2", { id: "answer-question", class: "answer-question" }, state.question),
      status,
      body,
      after,
      people,
    );

    function claimParagraph(claim) {
      const paragraph = h("p", { class: "claim" }, claim.text);
      for (const n of claim.citations) {
        const button = h(
          "button",
          {
            type: "button",
            class: "cite",
            disabled: true,
            dataset: { n: String(n) },
            "aria-label": t("chat.openSource", { n }),
            onClick: () => openCitation(n, button),
          },
          `[${n}]`,
        );
        markers.push(button);
        paragraph.append(" ", button);
      }
      return paragraph;
    }

    function openCitation(n, opener) {
      const citation = state.citations.find((c) => c.n === n);
      if (citation) {
        const source = state.sources.find((s) => s.n === citation.source);
        dialog.open(citation, source, opener);
      }
    }

    function enableMarkers() {
      for (const button of markers) {
        const citation = state.citations.find((c) => c.n === Number(button.dataset.n));
        if (citation) {
          button.disabled = false;
          button.setAttribute("aria-label", t("chat.openSourceTitled", { n: citation.n, title: citation.title }));
        }
      }
    }

    return {
      element,
      started() {
        body.lang = state.language;
        if (state.abstained) {
          status.replaceWith(
            h("p", { class: "abstain" }, icon(ICONS.alert), h("strong", {}, t("chat.abstain"))),
          );
        } else {
          status.replaceWith(h("p", { class: "lead" }, t("chat.lead")));
        }
      },
      addClaim(claim) {
        body.append(claimParagraph(claim));
      },
      citationsReady() {
        enableMarkers();
        if (!state.citations.length) {
          return;
        }
        after.append(
          h("h3", {}, t("chat.sources")),
          h(
            "ol",
            { class: "source-list" },
            state.citations.map((citation) =>
              h(
                "li",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "link-button",
                    onClick: (event) => openCitation(citation.n, event.currentTarget),
                  },
                  `[${citation.n}] ${citation.title}`,
                ),
                citation.session_date ? h("span", { class: "muted" }, ` · ${formatDate(citation.session_date, lang)}`) : null,
              ),
            ),
          ),
        );
      },
      showSuggestions() {
        people.replaceChildren(suggestionsView(state.suggestions, state.abstained));
      },
      finished() {
        if (state.id) {
          after.append(feedbackForm(state.id));
        }
      },
      failed(message) {
        status.remove();
        body.replaceChildren(h("p", { class: "error", role: "alert" }, message));
      },
      restoreFrom(saved) {
        Object.assign(state, saved);
        this.started();
        for (const claim of state.claims) {
          this.addClaim(claim);
        }
        this.citationsReady();
        if (state.suggestions) {
          this.showSuggestions();
        }
        this.finished();
      },
    };
  }

  function personLink(name) {
    return h("a", { href: `#/people/${encodeURIComponent(name)}`, class: "person-name" }, name);
  }

  function suggestionsView(suggestions, abstained) {
    const experts = suggestions.experts || [];
    const peers = suggestions.peers || [];
    const wrapper = h("div", { class: "suggestions" });
    if (abstained) {
      wrapper.append(
        h("p", { class: "abstain-people" }, experts.length || peers.length ? t("chat.askThese") : t("chat.nobody")),
      );
    }
    if (experts.length) {
      wrapper.append(
        h("h3", {}, t("chat.experts")),
        h(
          "ul",
          { class: "person-cards" },
          experts.map((expert) =>
            h(
              "li",
              { class: "person-card expert-card" },
              h("div", { class: "person-head" }, icon(ICONS.person), personLink(expert.name)),
              h(
                "ul",
                { class: "evidence" },
                expert.evidence.map((evidence) =>
                  h(
                    "li",
                    {},
                    h("blockquote", {}, evidence.quote),
                    h(
                      "p",
                      { class: "muted evidence-meta" },
                      t("chat.evidenceFrom", { title: evidence.title, role: roleLabel(evidence.role) }),
                    ),
                  ),
                ),
              ),
              h("p", { class: "reach" }, t("chat.reachExpert", { name: expert.name })),
            ),
          ),
        ),
      );
    }
    if (peers.length) {
      wrapper.append(
        h("h3", {}, t("chat.peers")),
        h(
          "ul",
          { class: "person-cards" },
          peers.map((peer) =>
            h(
              "li",
              { class: "person-card peer-card" },
              h("div", { class: "person-head" }, icon(ICONS.person), personLink(peer.name)),
              h("p", {}, peer.reason),
              h("p", { class: "reach" }, t("chat.reachPeer", { name: peer.name })),
            ),
          ),
        ),
      );
    }
    return wrapper;
  }

  function roleLabel(role) {
    const key = `chat.role.${role.replace(/^participant:/, "")}`;
    return t.has(key) ? t(key) : role;
  }

  function feedbackForm(questionId) {
    let rating = 0;
    const comment = h("textarea", { id: `feedback-comment-${questionId}`, rows: "2", maxlength: "4000" });
    const message = h("p", { class: "feedback-message", role: "status" });
    const submit = h("button", { type: "submit", class: "button primary small", disabled: true }, t("chat.sendFeedback"));
    const thumbs = [
      [1, ICONS.thumbUp, t("chat.helpful")],
      [-1, ICONS.thumbDown, t("chat.notHelpful")],
    ].map(([value, paths, label]) =>
      h(
        "button",
        {
          type: "button",
          class: "button small thumb",
          "aria-pressed": "false",
          dataset: { rating: String(value) },
          onClick: (event) => {
            rating = value;
            for (const thumb of thumbs) {
              thumb.setAttribute("aria-pressed", String(thumb === event.currentTarget));
            }
            submit.disabled = false;
          },
        },
        icon(paths),
        label,
      ),
    );
    const form = h(
      "form",
      {
        class: "feedback",
        onSubmit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          try {
            await api.post(`/api/questions/${encodeURIComponent(questionId)}/feedback`, {
              rating,
              comment: comment.value,
            });
            form.replaceChildren(h("p", { class: "feedback-message", role: "status" }, icon(ICONS.check), t("chat.thanks")));
          } catch (error) {
            message.textContent = describeError(t, error);
            submit.disabled = false;
          }
        },
      },
      h(
        "fieldset",
        {},
        h("legend", {}, t("chat.wasHelpful")),
        h("div", { class: "toolbar" }, thumbs),
        h(
          "div",
          { class: "field" },
          h("label", { for: `feedback-comment-${questionId}` }, t("chat.comment")),
          comment,
        ),
        h("div", { class: "toolbar" }, submit),
        message,
      ),
    );
    return form;
  }

  function showFromHistory(item) {
    const saved = answers.get(item.id);
    if (saved) {
      const view = answerView({ question: saved.question });
      result.replaceChildren(view.element);
      view.restoreFrom(saved);
      return;
    }
    const again = h(
      "button",
      {
        type: "button",
        class: "button small",
        onClick: () => {
          question.value = item.question;
          form.requestSubmit();
        },
      },
      t("chat.askAgain"),
    );
    result.replaceChildren(
      h(
        "article",
        { class: "card answer past", "aria-labelledby": "answer-question" },
        h("h2", { id: "answer-question", class: "answer-question" }, item.question),
        h("p", { class: "muted" }, t("chat.askedOn", { date: formatDate(item.asked_at, lang, { dateStyle: "medium", timeStyle: "short" }) })),
        item.answer
          ? h("p", { class: item.answered ? "claim" : "abstain", lang: item.language }, item.answer)
          : h("p", { class: "empty" }, t("chat.withheld")),
        h("p", { class: "muted" }, t("chat.pastHint")),
        again,
      ),
    );
  }

  async function loadHistory() {
    try {
      const { questions } = await api.get("/api/questions/mine", { limit: HISTORY_LIMIT });
      if (!questions.length) {
        historyList.replaceChildren(h("li", { class: "empty" }, t("chat.noHistory")));
        return;
      }
      historyList.replaceChildren(
        ...questions.map((item) =>
          h(
            "li",
            {},
            h(
              "button",
              { type: "button", class: "history-item", onClick: () => showFromHistory(item) },
              h("span", { class: "history-question" }, item.question),
              h(
                "span",
                { class: "history-meta" },
                formatDate(item.asked_at, lang),
                " · ",
                item.answered ? t("chat.answered") : t("chat.unanswered"),
              ),
            ),
          ),
        ),
      );
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        historyList.replaceChildren(h("li", { class: "error" }, describeError(t, error)));
      }
    }
  }

  loadHistory();
  return () => {
    if (controller) {
      controller.abort();
    }
    dialog.element.close();
  };
}

function sourceDialog(t) {
  const title = h("h2", { id: "source-title" });
  const meta = h("dl", { class: "source-meta" });
  const passage = h("blockquote", { class: "passage" });
  const close = h("button", { type: "button", class: "button small", onClick: () => element.close() }, icon(ICONS.close), t("common.close"));
  const element = h(
    "dialog",
    { class: "source-dialog", "aria-labelledby": "source-title" },
    h("div", { class: "dialog-head" }, title, close),
    meta,
    h("h3", { class: "visually-hidden" }, t("chat.passage")),
    passage,
  );
  let opener = null;
  element.addEventListener("close", () => {
    if (opener && opener.isConnected) {
      opener.focus();
    }
  });
  element.addEventListener("click", (event) => {
    if (event.target === element) {
      element.close();
    }
  });

  function row(label, value) {
    return value ? [h("dt", {}, label), h("dd", {}, value)] : [];
  }

  return {
    element,
    open(citation, source, from) {
      opener = from;
      const lang = document.documentElement.lang;
      title.textContent = citation.title;
      const kind = source ? kindLabel(t, source.kind_of_note) || "" : "";
      meta.replaceChildren(
        ...row(t("chat.sourceNumber"), `[${citation.n}]`),
        ...row(t("chat.format"), citation.kind === "practice" ? `${t("chat.practice")} · ${kind}` : kind),
        ...row(t("chat.community"), source ? source.community : ""),
        ...row(t("chat.date"), formatDate(citation.session_date, lang)),
        ...row(t("chat.speaker"), citation.speaker || ""),
      );
      const [before, quote, after] = locateQuote(source, citation);
      passage.lang = citation.language;
      passage.replaceChildren(before, h("mark", {}, quote), after);
      element.showModal();
      passage.querySelector("mark").scrollIntoView({ block: "center" });
      close.focus();
    },
  };
}
