// Review (HR): the queue of drafts and due entries in priority order, filtered and sorted; beside it the open entry,
// editable, with its evidence highlighted in the notes it quotes, its personal-data flags, its duplicates and its
// history; approve, reject with a reason, edit, merge duplicates, supersede; keyboard shortcuts for the common acts.

import { ApiError } from "../api.js";
import { formatDate, h, icon, ICONS, useStylesheet } from "../dom.js";
import { describeError, kindLabel } from "../i18n.js";

const PAGE_SIZE = 50;
// The queue's statuses (capture.review_queue.QUEUE_STATUSES) and sorts (SORTS).
const STATUSES = ["open", "draft", "due", "approved", "rejected", "merged", "superseded"];
const SORTS = ["priority", "grounding", "corroboration", "age"];
const REVIEWABLE = new Set(["draft", "approved"]);
const SHORTCUTS = [
  ["j", "next"],
  ["k", "previous"],
  ["a", "approve"],
  ["r", "reject"],
  ["e", "edit"],
  ["m", "merge"],
  ["?", "help"],
];

function statusLabel(t, status) {
  return {
    open: t("review.status.open"),
    draft: t("status.draft"),
    due: t("review.status.due"),
    approved: t("status.approved"),
    rejected: t("status.rejected"),
    merged: t("status.merged"),
    superseded: t("status.superseded"),
  }[status];
}

function sortLabel(t, sort) {
  return {
    priority: t("review.sort.priority"),
    grounding: t("review.sort.grounding"),
    corroboration: t("review.sort.corroboration"),
    age: t("review.sort.age"),
  }[sort];
}

function visibilityLabel(t, visibility) {
  const labels = {
    public: t("visibility.public"),
    community: t("visibility.community"),
    private: t("visibility.private"),
  };
  return labels[visibility] || visibility;
}

function claimLabel(t, claim) {
  const labels = {
    practice: t("review.claim.practice"),
    step: t("review.claim.step"),
    context: t("review.claim.context"),
    why: t("review.claim.why"),
    pitfall: t("review.claim.pitfall"),
  };
  return labels[claim] || claim;
}

function actionLabel(t, action) {
  const labels = {
    drafted: t("review.action.drafted"),
    edited: t("review.action.edited"),
    approved: t("review.action.approved"),
    rejected: t("review.action.rejected"),
    merged: t("review.action.merged"),
    superseded: t("review.action.superseded"),
    due: t("review.action.due"),
    redacted: t("review.action.redacted"),
    pseudonymised: t("review.action.pseudonymised"),
  };
  return labels[action] || action;
}

function shortcutLabel(t, name) {
  return {
    next: t("review.shortcut.next"),
    previous: t("review.shortcut.previous"),
    approve: t("review.shortcut.approve"),
    reject: t("review.shortcut.reject"),
    edit: t("review.shortcut.edit"),
    merge: t("review.shortcut.merge"),
    help: t("review.shortcut.help"),
  }[name];
}

/** The sentence for a failed review action: this page's own for the usual cases, else the common one. */
function reviewError(t, error) {
  const code = error instanceof ApiError ? error.code : "unknown";
  const messages = {
    review_conflict: () => t("review.error.conflict"),
    practice_not_found: () => t("review.error.notFound"),
    invalid_metadata: () => t("review.error.invalid", { detail: error.detail }),
    forbidden: () => t("review.error.forbidden"),
  };
  return (messages[code] || (() => describeError(t, error)))();
}

function isTyping(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}

function flaggedPii(practice) {
  return (practice.pii || []).filter((finding) => !finding.participant);
}

function isDue(practice) {
  if (practice.status !== "approved" || !practice.review_due) {
    return false;
  }
  const now = new Date();
  const pad = (value) => String(value).padStart(2, "0");
  return practice.review_due <= `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/** Whether approving makes sense: a draft, or an approved entry whose review date has come (a confirmation). */
function mayApprove(practice) {
  return practice.status === "draft" || isDue(practice);
}

function lines(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

/** A note excerpt as text nodes with each quoted span in a `<mark>` (overlapping spans are joined). */
function highlighted(t, source) {
  const parts = [];
  if (source.offset > 0) {
    parts.push("… ");
  }
  let cursor = 0;
  const spans = [...source.spans].sort((left, right) => left.start - right.start || left.end - right.end);
  for (const span of spans) {
    const start = Math.max(span.start, cursor);
    if (span.end <= start) {
      continue;
    }
    parts.push(source.text.slice(cursor, start));
    parts.push(
      h(
        "mark",
        { class: "evidence-mark", dataset: { claim: span.claim }, title: claimLabel(t, span.claim) },
        source.text.slice(start, span.end),
      ),
    );
    cursor = span.end;
  }
  parts.push(source.text.slice(cursor));
  if (source.offset + source.text.length < source.note_length) {
    parts.push(" …");
  }
  return parts;
}

function modal(id, title, ...body) {
  const heading = h("h2", { id: `${id}-title` }, title);
  const element = h("dialog", { class: "review-dialog", id, "aria-labelledby": `${id}-title` }, heading, ...body);
  return element;
}

export async function render(root, ctx) {
  const { api, t, lang, user } = ctx;
  useStylesheet("review");
  if (!user.may_review) {
    root.append(
      h(
        "section",
        { class: "card not-allowed", role: "alert" },
        h("h1", {}, t("common.notAllowed")),
        h("p", {}, t("review.notAllowed")),
      ),
    );
    return undefined;
  }

  const state = {
    filters: { status: "open", community: "", kind: "", tag: "", due_before: "", sort: "priority" },
    items: [],
    total: 0,
    facets: { communities: [], kinds: [], tags: [] },
    selected: null,
    detail: null,
    editing: false,
    loading: 0,
    opening: 0,
  };

  // ----- layout -----------------------------------------------------------------------------------------------

  const filterFields = {
    status: h("select", { id: "review-status" }),
    community: h("select", { id: "review-community" }),
    kind: h("select", { id: "review-kind" }),
    tag: h("select", { id: "review-tag" }),
    due_before: h("input", { id: "review-due", type: "date" }),
    sort: h("select", { id: "review-sort" }),
  };
  const field = (name, label) =>
    h("div", { class: "field" }, h("label", { for: filterFields[name].id }, label), filterFields[name]);
  const filters = h(
    "form",
    {
      class: "review-filters card",
      role: "search",
      "aria-label": t("review.filters"),
      onSubmit: (event) => event.preventDefault(),
    },
    field("status", t("review.filter.status")),
    field("community", t("review.filter.community")),
    field("kind", t("review.filter.kind")),
    field("tag", t("review.filter.tag")),
    field("due_before", t("review.filter.due")),
    field("sort", t("review.filter.sort")),
  );
  for (const [name, element] of Object.entries(filterFields)) {
    element.addEventListener("change", () => {
      state.filters[name] = element.value;
      loadQueue({ keep: false });
    });
  }

  const queueHeading = h("h2", { id: "review-queue-title" }, t("review.queue"));
  const queueCount = h("p", { class: "muted queue-count", "aria-live": "polite" });
  const queueList = h("ol", {
    class: "queue-list",
    "aria-labelledby": "review-queue-title",
    "aria-keyshortcuts": "j k",
  });
  const moreButton = h(
    "button",
    { type: "button", class: "button small queue-more", hidden: true, onClick: loadMore },
    t("review.more"),
  );
  const queuePane = h(
    "section",
    { class: "review-queue card", "aria-labelledby": "review-queue-title" },
    queueHeading,
    queueCount,
    queueList,
    moreButton,
  );

  const detailPane = h("section", { class: "review-detail", "aria-label": t("review.detail"), "aria-live": "polite" });

  const helpButton = h(
    "button",
    { type: "button", class: "button small", "aria-keyshortcuts": "?", onClick: () => openHelp() },
    t("review.shortcuts"),
  );
  root.append(
    h(
      "div",
      { class: "review-page" },
      h(
        "div",
        { class: "review-head" },
        h("div", {}, h("h1", {}, t("review.title")), h("p", { class: "muted" }, t("review.intro"))),
        helpButton,
      ),
      filters,
      h("div", { class: "review-layout" }, queuePane, detailPane),
    ),
  );

  // ----- dialogs ----------------------------------------------------------------------------------------------

  /** A modal form: its fields, then the confirming button and Cancel; `onSubmit` decides when it closes. */
  function formDialog(id, title, { confirm, tone, onSubmit }, ...fields) {
    const element = modal(
      id,
      title,
      h(
        "form",
        { method: "dialog", class: "stack", onSubmit },
        ...fields,
        h(
          "div",
          { class: "toolbar" },
          h("button", { type: "submit", class: ["button", tone] }, confirm),
          h("button", { type: "button", class: "button", onClick: () => element.close() }, t("common.cancel")),
        ),
      ),
    );
    return element;
  }

  const rejectReason = h("textarea", {
    id: "reject-reason",
    "aria-required": "true",
    "aria-describedby": "reject-hint reject-error",
    maxlength: "2000",
    rows: "4",
  });
  const rejectError = h("p", { class: "error", id: "reject-error", role: "alert" });
  const rejectDialog = formDialog(
    "reject-dialog",
    t("review.reject.title"),
    { confirm: t("review.reject"), tone: "danger", onSubmit: submitReject },
    h(
      "div",
      { class: "field" },
      h("label", { for: "reject-reason" }, t("review.reject.reason")),
      h("p", { class: "hint", id: "reject-hint" }, t("review.reject.hint")),
      rejectReason,
    ),
    rejectError,
  );

  const mergeChoices = h("fieldset", { class: "merge-choices" });
  const mergeError = h("p", { class: "error", role: "alert" });
  const mergeDialog = formDialog(
    "merge-dialog",
    t("review.merge.title"),
    { confirm: t("review.merge.confirm"), tone: "primary", onSubmit: submitMerge },
    h("p", {}, t("review.merge.explain")),
    mergeChoices,
    mergeError,
  );

  const supersedeSelect = h("select", { id: "supersede-old" });
  const supersedeError = h("p", { class: "error", role: "alert" });
  const supersedeDialog = formDialog(
    "supersede-dialog",
    t("review.supersede.title"),
    { confirm: t("review.supersede.confirm"), tone: "primary", onSubmit: submitSupersede },
    h("p", {}, t("review.supersede.explain")),
    h("div", { class: "field" }, h("label", { for: "supersede-old" }, t("review.supersede.choose")), supersedeSelect),
    supersedeError,
  );

  const piiList = h("ul", { class: "pii-list" });
  const piiDialog = formDialog(
    "pii-dialog",
    t("review.pii.confirmTitle"),
    {
      confirm: t("review.pii.approveAnyway"),
      tone: "primary",
      onSubmit: (event) => {
        event.preventDefault();
        piiDialog.close();
        approve(true);
      },
    },
    h("p", {}, t("review.pii.confirm")),
    piiList,
  );

  const helpDialog = modal(
    "help-dialog",
    t("review.shortcuts"),
    h(
      "dl",
      { class: "shortcut-list" },
      SHORTCUTS.map(([key, name]) => [h("dt", {}, h("kbd", {}, key)), h("dd", {}, shortcutLabel(t, name))]),
    ),
    h("p", { class: "muted" }, t("review.shortcut.typing")),
    h("form", { method: "dialog" }, h("button", { type: "submit", class: "button" }, t("common.close"))),
  );
  for (const dialog of [rejectDialog, mergeDialog, supersedeDialog, piiDialog, helpDialog]) {
    root.append(dialog);
  }

  // ----- the queue --------------------------------------------------------------------------------------------

  function fillSelect(element, values, label, chosen, anyLabel) {
    const options = [];
    if (anyLabel) {
      options.push(h("option", { value: "" }, anyLabel));
    }
    for (const value of values) {
      options.push(h("option", { value, selected: value === chosen }, label(value)));
    }
    element.replaceChildren(...options);
    element.value = values.includes(chosen) ? chosen : "";
  }

  function renderFilters() {
    const { facets, filters: chosen } = state;
    fillSelect(filterFields.status, STATUSES, (s) => statusLabel(t, s), chosen.status);
    fillSelect(filterFields.community, facets.communities, (c) => c, chosen.community, t("review.filter.any"));
    fillSelect(filterFields.kind, facets.kinds, (k) => kindLabel(t, k), chosen.kind, t("review.filter.any"));
    fillSelect(filterFields.tag, facets.tags, (tag) => tag, chosen.tag, t("review.filter.any"));
    fillSelect(filterFields.sort, SORTS, (s) => sortLabel(t, s), chosen.sort);
    filterFields.due_before.value = chosen.due_before;
  }

  function query(offset) {
    const { sort, ...rest } = state.filters;
    return { ...rest, sort, offset, limit: PAGE_SIZE };
  }

  function reasons(item) {
    const badges = [];
    const { priority } = item;
    if (priority.grounding > 0) {
      badges.push(
        h("span", { class: "badge reason-grounding" }, t("review.reason.grounding", { n: priority.grounding })),
      );
    }
    if (priority.corroboration > 1) {
      badges.push(
        h(
          "span",
          { class: "badge reason-corroboration" },
          t("review.reason.corroboration", { n: priority.corroboration }),
        ),
      );
    }
    badges.push(h("span", { class: "badge reason-age" }, t("review.reason.age", { n: priority.age_days })));
    if (isDue(item)) {
      badges.push(h("span", { class: "badge warning" }, t("review.status.due")));
    }
    if (flaggedPii(item).length) {
      badges.push(h("span", { class: "badge danger" }, t("review.reason.pii")));
    }
    return badges;
  }

  function renderQueue() {
    queueCount.textContent = t("review.count", { shown: state.items.length, total: state.total });
    if (!state.items.length) {
      queueList.replaceChildren(h("li", { class: "empty" }, t("review.emptyQueue")));
    } else {
      queueList.replaceChildren(
        ...state.items.map((item, index) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: "queue-item",
                dataset: { id: item.id },
                "aria-current": item.id === state.selected ? "true" : null,
                "aria-describedby": `why-${index}`,
                onClick: () => select(item.id, { focusList: false }),
              },
              h("span", { class: "queue-rank" }, String(index + 1)),
              h("span", { class: "queue-title" }, item.title),
              h(
                "span",
                { class: "queue-meta muted" },
                `${item.community} · ${kindLabel(t, item.kind)} · ${statusLabel(t, item.status)}`,
              ),
              h(
                "span",
                { class: "queue-why", id: `why-${index}` },
                h("span", { class: "visually-hidden" }, t("review.why", { score: item.priority.score })),
                reasons(item),
              ),
            ),
          ),
        ),
      );
    }
    moreButton.hidden = state.items.length >= state.total;
  }

  async function loadQueue({ keep = true, focusIndex = null } = {}) {
    const ticket = ++state.loading;
    queueList.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await api.get("/api/review/queue", query(0));
    } catch (error) {
      if (ticket === state.loading) {
        queueList.removeAttribute("aria-busy");
        queueList.replaceChildren(h("li", { class: "error", role: "alert" }, reviewError(t, error)));
      }
      return;
    }
    if (ticket !== state.loading) {
      return;
    }
    queueList.removeAttribute("aria-busy");
    state.items = page.items;
    state.total = page.total;
    state.facets = page.facets;
    renderFilters();
    const ids = state.items.map((item) => item.id);
    let next = ids[0] ?? null;
    if (keep && ids.includes(state.selected)) {
      next = state.selected;
    } else if (focusIndex !== null) {
      next = ids[Math.min(focusIndex, ids.length - 1)] ?? null;
    }
    renderQueue();
    if (next) {
      await select(next, { focusList: focusIndex !== null });
    } else {
      state.selected = null;
      state.detail = null;
      detailPane.replaceChildren(h("div", { class: "card empty" }, t("review.nothingSelected")));
      if (focusIndex !== null) {
        queueHeading.setAttribute("tabindex", "-1");
        queueHeading.focus();
      }
    }
  }

  async function loadMore() {
    try {
      const page = await api.get("/api/review/queue", query(state.items.length));
      state.items = [...state.items, ...page.items];
      state.total = page.total;
      renderQueue();
      const first = queueList.querySelector(`.queue-item[data-id="${CSS.escape(page.items[0]?.id || "")}"]`);
      if (first) {
        first.focus();
      }
    } catch (error) {
      ctx.announce(reviewError(t, error));
    }
  }

  function queueButton(id) {
    return queueList.querySelector(`.queue-item[data-id="${CSS.escape(id)}"]`);
  }

  async function select(id, { focusList }) {
    state.selected = id;
    state.editing = false;
    for (const button of queueList.querySelectorAll(".queue-item")) {
      if (button.dataset.id === id) {
        button.setAttribute("aria-current", "true");
      } else {
        button.removeAttribute("aria-current");
      }
    }
    const button = queueButton(id);
    if (button && focusList) {
      button.focus();
      button.scrollIntoView({ block: "nearest" });
    }
    await openItem(id);
  }

  function move(step) {
    if (!state.items.length) {
      return;
    }
    const index = state.items.findIndex((item) => item.id === state.selected);
    const next = index < 0 ? 0 : Math.min(Math.max(index + step, 0), state.items.length - 1);
    select(state.items[next].id, { focusList: true });
  }

  // ----- the open entry ---------------------------------------------------------------------------------------

  async function openItem(id) {
    const ticket = ++state.opening;
    detailPane.setAttribute("aria-busy", "true");
    let detail;
    try {
      detail = await api.get(`/api/review/items/${encodeURIComponent(id)}`);
    } catch (error) {
      if (ticket === state.opening) {
        detailPane.removeAttribute("aria-busy");
        detailPane.replaceChildren(
          h("div", { class: "card" }, h("p", { class: "error", role: "alert" }, reviewError(t, error))),
        );
      }
      return;
    }
    if (ticket !== state.opening) {
      return;
    }
    detailPane.removeAttribute("aria-busy");
    state.detail = detail;
    renderDetail();
  }

  const actionStatus = h("p", { class: "action-status", role: "status" });
  const actionError = h("p", { class: "error action-error", role: "alert" });

  function actionButton(label, className, shortcut, onClick, disabled = false) {
    return h(
      "button",
      {
        type: "button",
        class: ["button", className],
        "aria-keyshortcuts": shortcut,
        disabled: disabled || null,
        onClick,
      },
      label,
      shortcut ? h("kbd", { class: "shortcut-hint", "aria-hidden": "true" }, shortcut) : null,
    );
  }

  function renderDetail() {
    const { practice, priority, sources, duplicates, history, drafted_at: draftedAt } = state.detail;
    const reviewable = REVIEWABLE.has(practice.status);
    const mergeable = duplicates.filter((d) => REVIEWABLE.has(d.status));
    actionError.textContent = "";
    const actions = h(
      "div",
      { class: "toolbar review-actions", role: "toolbar", "aria-label": t("review.actions") },
      actionButton(t("review.approve"), "primary", "a", () => approve(false), !mayApprove(practice)),
      actionButton(t("review.reject"), "danger", "r", openReject, !reviewable),
      actionButton(t("review.edit"), "", "e", startEdit, !reviewable),
      actionButton(t("review.merge"), "", "m", openMerge, !reviewable || !mergeable.length),
      actionButton(t("review.supersede"), "", null, openSupersede, practice.status !== "approved"),
    );

    const why = h(
      "div",
      { class: "why-first" },
      h("h3", {}, t("review.whyTitle")),
      h(
        "dl",
        { class: "why-list" },
        h("dt", {}, t("review.priority.score")),
        h("dd", {}, new Intl.NumberFormat(lang, { maximumFractionDigits: 2 }).format(priority.score)),
        h("dt", {}, t("review.priority.grounding")),
        h("dd", {}, String(priority.grounding)),
        h("dt", {}, t("review.priority.corroboration")),
        h(
          "dd",
          {},
          t("review.priority.corroborationValue", { notes: priority.corroboration, people: priority.contributors }),
        ),
        h("dt", {}, t("review.priority.age")),
        h("dd", {}, t("review.priority.ageValue", { n: priority.age_days, date: formatDate(draftedAt, lang) })),
      ),
    );

    const pii = flaggedPii(practice);
    const piiCard = pii.length
      ? h(
          "div",
          { class: "pii-card", role: "note" },
          h("h3", {}, icon(ICONS.alert), " ", t("review.pii.title")),
          h("p", {}, t("review.pii.explain")),
          h(
            "ul",
            { class: "pii-findings" },
            pii.map((finding) =>
              h("li", {}, h("strong", {}, finding.text), ` — ${finding.entity} (${finding.field})`),
            ),
          ),
        )
      : null;

    const draftColumn = h(
      "div",
      { class: "draft-column" },
      state.editing ? editForm(practice) : draftView(practice),
      h("h3", {}, t("review.contributors")),
      practice.contributor_roles.length
        ? h(
            "ul",
            { class: "chips" },
            practice.contributor_roles.map((c) =>
              h("li", { class: "chip" }, c.name, h("span", { class: "muted" }, ` · ${c.role}`)),
            ),
          )
        : h("p", { class: "empty" }, t("review.noContributors")),
      duplicatesSection(duplicates),
    );
    const evidenceColumn = h(
      "div",
      { class: "evidence-column" },
      h("h3", {}, t("review.evidence")),
      sources.length
        ? sources.map((source) =>
            h(
              "figure",
              { class: "note-excerpt" },
              h(
                "figcaption",
                {},
                h("strong", {}, source.title),
                h(
                  "span",
                  { class: "muted" },
                  ` · ${kindLabel(t, source.kind)} · ${formatDate(source.session_date, lang)}`,
                  ` · ${visibilityLabel(t, source.visibility)}`,
                ),
              ),
              h("blockquote", { class: "note-text", lang: practice.language }, highlighted(t, source)),
              h(
                "ul",
                { class: "span-list" },
                source.spans.map((span) =>
                  h(
                    "li",
                    {},
                    h("span", { class: "badge" }, claimLabel(t, span.claim)),
                    " ",
                    t("review.quoted", { quote: span.quote }),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, t("review.noEvidence")),
    );

    const historyList = h(
      "ol",
      { class: "history-list" },
      history.map((event) =>
        h(
          "li",
          {},
          h("strong", {}, actionLabel(t, event.action)),
          ` — ${event.actor} · `,
          h("time", { datetime: event.at }, formatDate(event.at, lang, { dateStyle: "medium", timeStyle: "short" })),
          event.reason ? h("div", { class: "muted" }, event.reason) : null,
        ),
      ),
    );

    detailPane.replaceChildren(
      h(
        "article",
        { class: "card review-item", "aria-labelledby": "review-item-title" },
        h(
          "header",
          { class: "item-head" },
          h("h2", { id: "review-item-title", tabindex: "-1" }, practice.title),
          h(
            "p",
            { class: "item-badges" },
            h("span", { class: "badge" }, statusLabel(t, practice.status)),
            " ",
            h("span", { class: "badge" }, practice.community),
            " ",
            h("span", { class: "badge" }, kindLabel(t, practice.kind)),
            practice.rejection_reason
              ? h("span", { class: "muted" }, t("review.rejectedBecause", { reason: practice.rejection_reason }))
              : null,
            practice.superseded_by
              ? h("span", { class: "muted" }, t("review.supersededBy", { id: practice.superseded_by }))
              : null,
          ),
          actions,
          actionStatus,
          actionError,
        ),
        piiCard,
        h("div", { class: "detail-columns" }, draftColumn, evidenceColumn),
        why,
        h(
          "details",
          { class: "history" },
          h("summary", {}, icon(ICONS.history), " ", t("review.history", { n: history.length })),
          historyList,
        ),
      ),
    );
  }

  function draftView(practice) {
    const block = (label, content) => (content ? [h("dt", {}, label), h("dd", {}, content)] : null);
    const list = (items) => (items.length ? h("ul", {}, items.map((item) => h("li", {}, item))) : null);
    return h(
      "dl",
      { class: "draft-fields", lang: practice.language },
      block(t("review.field.practice"), practice.practice),
      block(t("review.field.steps"), list(practice.steps)),
      block(t("review.field.context"), practice.context),
      block(t("review.field.rationale"), practice.rationale),
      block(t("review.field.pitfalls"), list(practice.pitfalls)),
      block(
        t("review.field.tags"),
        practice.tags.length
          ? h("span", { class: "chips" }, practice.tags.map((tag) => h("span", { class: "chip" }, tag)))
          : h("span", { class: "empty" }, t("review.noTags")),
      ),
    );
  }

  function editForm(practice) {
    const input = (name, label, element) =>
      h("div", { class: "field" }, h("label", { for: `edit-${name}` }, label), element);
    const title = h("input", { id: "edit-title", value: practice.title, maxlength: "300", "aria-required": "true" });
    const statement = h("textarea", { id: "edit-practice", rows: "4", "aria-required": "true" }, practice.practice);
    const perLine = { rows: "4", "aria-describedby": "edit-lines-hint" };
    const steps = h("textarea", { id: "edit-steps", ...perLine }, practice.steps.join("\n"));
    const context = h("textarea", { id: "edit-context", rows: "2" }, practice.context);
    const rationale = h("textarea", { id: "edit-rationale", rows: "2" }, practice.rationale);
    const pitfalls = h("textarea", { id: "edit-pitfalls", ...perLine }, practice.pitfalls.join("\n"));
    const tags = h("input", { id: "edit-tags", value: practice.tags.join(", "), "aria-describedby": "edit-tags-hint" });
    const error = h("p", { class: "error", role: "alert" });
    const form = h(
      "form",
      {
        class: "edit-form",
        "aria-label": t("review.edit.title"),
        onSubmit: async (event) => {
          event.preventDefault();
          const changes = {
            title: title.value.trim(),
            practice: statement.value.trim(),
            steps: lines(steps.value),
            context: context.value.trim(),
            rationale: rationale.value.trim(),
            pitfalls: lines(pitfalls.value),
            tags: tags.value.split(",").map((tag) => tag.trim()).filter(Boolean),
          };
          if (!changes.title || !changes.practice) {
            error.textContent = t("review.edit.required");
            (changes.title ? statement : title).focus();
            return;
          }
          try {
            await api.patch(`/api/practices/${encodeURIComponent(practice.id)}`, changes);
          } catch (failure) {
            error.textContent = reviewError(t, failure);
            return;
          }
          state.editing = false;
          ctx.announce(t("review.done.edited", { title: changes.title }));
          await loadQueue({ keep: true });
          focusDetailAction("e");
        },
      },
      input("title", t("review.field.title"), title),
      input("practice", t("review.field.practice"), statement),
      h("p", { class: "hint", id: "edit-lines-hint" }, t("review.edit.linesHint")),
      input("steps", t("review.field.steps"), steps),
      input("context", t("review.field.context"), context),
      input("rationale", t("review.field.rationale"), rationale),
      input("pitfalls", t("review.field.pitfalls"), pitfalls),
      input("tags", t("review.field.tags"), tags),
      h("p", { class: "hint", id: "edit-tags-hint" }, t("review.edit.tagsHint")),
      error,
      h(
        "div",
        { class: "toolbar" },
        h("button", { type: "submit", class: "button primary" }, t("common.save")),
        h("button", { type: "button", class: "button", onClick: cancelEdit }, t("common.cancel")),
      ),
    );
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        cancelEdit();
      }
    });
    return form;
  }

  function duplicatesSection(duplicates) {
    if (!duplicates.length) {
      return null;
    }
    const current = state.detail.practice;
    return h(
      "section",
      { class: "duplicates", "aria-labelledby": "duplicates-title" },
      h("h3", { id: "duplicates-title" }, t("review.duplicates", { n: duplicates.length })),
      h(
        "ul",
        { class: "duplicate-list" },
        duplicates.map((duplicate) =>
          h(
            "li",
            { class: "duplicate", dataset: { id: duplicate.id } },
            h("strong", {}, duplicate.title),
            h("span", { class: "muted" }, ` · ${statusLabel(t, duplicate.status)} · ${duplicate.notes.join(", ")}`),
            h("p", {}, duplicate.practice),
            REVIEWABLE.has(current.status) && REVIEWABLE.has(duplicate.status)
              ? h(
                  "button",
                  { type: "button", class: "button small", onClick: () => merge([duplicate.id]) },
                  t("review.mergeInto"),
                )
              : null,
          ),
        ),
      ),
    );
  }

  function focusDetailAction(shortcut) {
    const target = detailPane.querySelector(`[aria-keyshortcuts="${shortcut}"]`) || detailPane.querySelector("h2");
    if (target) {
      target.focus();
    }
  }

  function currentIndex() {
    return state.items.findIndex((item) => item.id === state.selected);
  }

  /** After an act: the queue again; the entry stays open if it still matches, else the next one does. */
  async function afterAction(message) {
    ctx.announce(message);
    const index = currentIndex();
    const id = state.selected;
    await loadQueue({ keep: true, focusIndex: Math.max(index, 0) });
    if (state.selected === id) {
      actionStatus.textContent = message;
      focusDetailAction("a");
    }
  }

  async function run(call, message) {
    actionError.textContent = "";
    try {
      await call();
    } catch (error) {
      actionError.textContent = reviewError(t, error);
      return false;
    }
    await afterAction(message);
    return true;
  }

  function reviewableNow() {
    return state.detail && REVIEWABLE.has(state.detail.practice.status) && !state.editing;
  }

  async function approve(confirmed) {
    if (!reviewableNow() || !mayApprove(state.detail.practice)) {
      return;
    }
    const { practice } = state.detail;
    const pii = flaggedPii(practice);
    if (pii.length && !confirmed) {
      piiList.replaceChildren(
        ...pii.map((finding) => h("li", {}, h("strong", {}, finding.text), ` — ${finding.entity}`)),
      );
      piiDialog.showModal();
      return;
    }
    await run(
      () => api.post(`/api/practices/${encodeURIComponent(practice.id)}/approve`),
      t("review.done.approved", { title: practice.title }),
    );
  }

  function openReject() {
    if (!reviewableNow()) {
      return;
    }
    rejectReason.value = "";
    rejectError.textContent = "";
    rejectDialog.showModal();
    rejectReason.focus();
  }

  async function submitReject(event) {
    event.preventDefault();
    const reason = rejectReason.value.trim();
    if (!reason) {
      rejectError.textContent = t("review.reject.required");
      rejectReason.focus();
      return;
    }
    const { practice } = state.detail;
    try {
      await api.post(`/api/practices/${encodeURIComponent(practice.id)}/reject`, { reason });
    } catch (error) {
      rejectError.textContent = reviewError(t, error);
      return;
    }
    rejectDialog.close();
    await afterAction(t("review.done.rejected", { title: practice.title }));
  }

  function startEdit() {
    if (!reviewableNow()) {
      return;
    }
    state.editing = true;
    renderDetail();
    detailPane.querySelector("#edit-title").focus();
  }

  function cancelEdit() {
    state.editing = false;
    renderDetail();
    focusDetailAction("e");
  }

  function openMerge() {
    if (!reviewableNow()) {
      return;
    }
    const mergeable = state.detail.duplicates.filter((d) => REVIEWABLE.has(d.status));
    if (!mergeable.length) {
      actionStatus.textContent = t("review.merge.none");
      return;
    }
    mergeError.textContent = "";
    mergeChoices.replaceChildren(
      h("legend", {}, t("review.merge.choose", { title: state.detail.practice.title })),
      ...mergeable.map((duplicate) =>
        h(
          "div",
          { class: "field checkbox" },
          h(
            "label",
            {},
            h("input", { type: "checkbox", name: "merge", value: duplicate.id, checked: true }),
            ` ${duplicate.title}`,
          ),
        ),
      ),
    );
    mergeDialog.showModal();
    mergeChoices.querySelector("input").focus();
  }

  async function submitMerge(event) {
    event.preventDefault();
    const chosen = [...mergeChoices.querySelectorAll("input:checked")].map((input) => input.value);
    if (!chosen.length) {
      mergeError.textContent = t("review.merge.required");
      return;
    }
    mergeDialog.close();
    await merge(chosen);
  }

  async function merge(sources) {
    const { practice } = state.detail;
    await run(
      () => api.post(`/api/practices/${encodeURIComponent(practice.id)}/merge`, { sources }),
      t("review.done.merged", { n: sources.length, title: practice.title }),
    );
  }

  async function openSupersede() {
    const { practice } = state.detail;
    supersedeError.textContent = "";
    let approved;
    try {
      approved = (await api.get("/api/practices", { status: "approved", community: practice.community })).practices;
    } catch (error) {
      actionError.textContent = reviewError(t, error);
      return;
    }
    const candidates = approved.filter((entry) => entry.id !== practice.id);
    if (!candidates.length) {
      actionStatus.textContent = t("review.supersede.none");
      return;
    }
    supersedeSelect.replaceChildren(...candidates.map((entry) => h("option", { value: entry.id }, entry.title)));
    supersedeDialog.showModal();
    supersedeSelect.focus();
  }

  async function submitSupersede(event) {
    event.preventDefault();
    const { practice } = state.detail;
    const old = supersedeSelect.value;
    const title = supersedeSelect.selectedOptions[0]?.textContent || old;
    try {
      await api.post(`/api/practices/${encodeURIComponent(old)}/supersede`, { by: practice.id });
    } catch (error) {
      supersedeError.textContent = reviewError(t, error);
      return;
    }
    supersedeDialog.close();
    await afterAction(t("review.done.superseded", { old: title, title: practice.title }));
  }

  function openHelp() {
    helpDialog.showModal();
  }

  // ----- keyboard ---------------------------------------------------------------------------------------------

  const handlers = {
    j: () => move(1),
    k: () => move(-1),
    a: () => approve(false),
    r: openReject,
    e: startEdit,
    m: openMerge,
    "?": openHelp,
  };

  function onKeydown(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) {
      return;
    }
    if (root.querySelector("dialog[open]")) {
      return;
    }
    const handler = handlers[event.key];
    if (handler) {
      event.preventDefault();
      handler();
    }
  }

  document.addEventListener("keydown", onKeydown);
  renderFilters();
  await loadQueue({ keep: false });
  return () => document.removeEventListener("keydown", onKeydown);
}
