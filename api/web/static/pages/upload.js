// Upload (facilitators, HR, admins): files dropped or chosen, or pasted text, with the session's details; then,
// document by document, the upload's progress, the extraction job, and the drafts drawn from the note with their
// evidence, which the uploader corrects before HR reviews them.

import { ApiError } from "../api.js";
import { h, icon, ICONS, useStylesheet } from "../dom.js";
import { describeError, kindLabel } from "../i18n.js";

// The vocabularies of capture.ingestion (NOTE_KINDS, ROLES, VISIBILITIES, DEFAULT_VISIBILITY); a test keeps them equal.
export const KINDS = ["circle", "pair", "mentoring", "other"];
export const ROLES = ["facilitator", "member", "pair", "mentor", "mentee", "author"];
export const VISIBILITIES = ["public", "community", "private"];
export const DEFAULT_VISIBILITY = { circle: "community", pair: "public", mentoring: "private", other: "community" };
// The roles a new participant row starts with, by kind: the first person, then everyone else.
const DEFAULT_ROLES = {
  circle: ["facilitator", "member"],
  pair: ["pair", "pair"],
  mentoring: ["mentor", "mentee"],
  other: ["author", "member"],
};
const ACCEPT = ".txt,.md,.markdown,.html,.htm,.docx,.odt,.pdf,text/plain,text/markdown,text/html,application/pdf";
const POLL_MS = 1000;
// A job still pending after this long is left to run: its drafts will reach the review queue anyway.
const POLL_LIMIT_MS = 10 * 60 * 1000;
// How long to wait for the job of a note that was stored unchanged (its job may be long gone).
const NO_JOB_MS = 15 * 1000;
const FINISHED = new Set(["done", "failed", "cancelled"]);
const SUGGEST_DELAY_MS = 200;

function visibilityLabel(t, visibility) {
  return {
    public: t("upload.visibility.public"),
    community: t("upload.visibility.community"),
    private: t("upload.visibility.private"),
  }[visibility];
}

function roleLabel(t, role) {
  return {
    facilitator: t("upload.role.facilitator"),
    member: t("upload.role.member"),
    pair: t("upload.role.pair"),
    mentor: t("upload.role.mentor"),
    mentee: t("upload.role.mentee"),
    author: t("upload.role.author"),
  }[role];
}

function claimLabel(t, claim) {
  const labels = {
    practice: t("upload.claim.practice"),
    step: t("upload.claim.step"),
    context: t("upload.claim.context"),
    why: t("upload.claim.why"),
    pitfall: t("upload.claim.pitfall"),
  };
  return labels[claim] || claim;
}

function statusLabel(t, status) {
  const labels = {
    draft: t("status.draft"),
    approved: t("status.approved"),
    rejected: t("status.rejected"),
    merged: t("status.merged"),
    superseded: t("status.superseded"),
  };
  return labels[status] || status;
}

/** The sentence for a failed upload of `name`, in plain words: this page's own, else the common one. */
function uploadError(t, error, name) {
  const code = error instanceof ApiError ? error.code : "unknown";
  const vars = { name };
  const messages = {
    unsupported_format: () => t("upload.error.unsupported_format", vars),
    document_too_large: () => t("upload.error.document_too_large", vars),
    corrupt_document: () => t("upload.error.corrupt_document", vars),
    empty_document: () => t("upload.error.empty_document", vars),
    invalid_metadata: () => t("upload.error.invalid_metadata", vars),
    parse_failed: () => t("upload.error.parse_failed", vars),
    parse_timeout: () => t("upload.error.parse_timeout", vars),
    external_id_taken: () => t("upload.error.external_id_taken", vars),
    forbidden: () => t("upload.error.forbidden", vars),
  };
  return (messages[code] || (() => describeError(t, error)))();
}

function today() {
  const now = new Date();
  const pad = (value) => String(value).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function formatSize(bytes, lang) {
  const units = ["B", "kB", "MB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${new Intl.NumberFormat(lang, { maximumFractionDigits: digits }).format(value)} ${units[unit]}`;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new DOMException("left the page", "AbortError"));
      },
      { once: true },
    );
  });
}

function select(id, values, label, chosen) {
  return h(
    "select",
    { id },
    values.map((value) => h("option", { value, selected: value === chosen }, label(value))),
  );
}

export async function render(root, ctx) {
  const { api, t, lang, user } = ctx;
  useStylesheet("upload");
  const leaving = new AbortController();
  const signal = leaving.signal;
  const canEdit = user.role === "facilitator" || user.may_review;
  const files = [];
  let busy = false;

  // ----- known people and communities -------------------------------------------------------------------------

  const peopleList = h("datalist", { id: "upload-people-list" });
  const communityList = h("datalist", { id: "upload-community-list" });
  const knownCommunities = new Set(user.communities || []);

  function fillPeople(people) {
    peopleList.replaceChildren(
      ...people.map((person) =>
        h(
          "option",
          { value: person.name },
          [person.roles.map((role) => roleLabel(t, role) || role).join(", "), person.communities.join(", ")]
            .filter(Boolean)
            .join(" · "),
        ),
      ),
    );
  }

  function fillCommunities() {
    communityList.replaceChildren(
      ...[...knownCommunities].sort((a, b) => a.localeCompare(b, lang)).map((name) => h("option", { value: name })),
    );
  }

  async function suggest(prefix) {
    try {
      const { people } = await api.get("/api/people", { prefix, limit: prefix ? 20 : 100 }, { signal });
      fillPeople(people);
      for (const person of people) {
        person.communities.forEach((community) => knownCommunities.add(community));
      }
      fillCommunities();
    } catch (error) {
      // Suggestions only help typing: without them the fields still take any name.
      if (error.name !== "AbortError") {
        console.warn("no name suggestions", error);
      }
    }
  }

  let suggestTimer = null;
  function suggestSoon(prefix) {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(() => suggest(prefix.trim()), SUGGEST_DELAY_MS);
  }

  // ----- the documents -------------------------------------------------------------------------------------

  const fileInput = h("input", {
    id: "upload-files",
    type: "file",
    multiple: true,
    accept: ACCEPT,
    class: "visually-hidden",
    tabindex: "-1",
    onChange: () => {
      addFiles(fileInput.files);
      fileInput.value = "";
    },
  });
  const fileList = h("ul", { id: "upload-file-list", class: "upload-file-list", "aria-label": t("upload.files") });
  const chooseButton = h(
    "button",
    { type: "button", class: "button", id: "upload-choose", onClick: () => fileInput.click() },
    t("upload.choose"),
  );
  const dropZone = h(
    "div",
    { id: "upload-drop", class: "upload-drop", role: "group", "aria-labelledby": "upload-drop-title" },
    icon(ICONS.upload, { size: 32 }),
    h("p", { id: "upload-drop-title", class: "upload-drop-title" }, t("upload.drop")),
    h("p", { class: "muted" }, t("upload.dropOr")),
    chooseButton,
    h("label", { for: "upload-files", class: "visually-hidden" }, t("upload.choose")),
    fileInput,
    h("p", { class: "hint" }, t("upload.formats")),
  );
  const text = h("textarea", { id: "upload-text", rows: "6", "aria-describedby": "upload-text-hint" });

  function addFiles(list) {
    for (const file of list) {
      if (!files.some((kept) => kept.name === file.name && kept.size === file.size)) {
        files.push(file);
      }
    }
    renderFiles();
  }

  function renderFiles() {
    fileList.replaceChildren(
      ...files.map((file, index) =>
        h(
          "li",
          { class: "chip upload-file" },
          h("span", { class: "upload-file-name" }, file.name),
          h("span", { class: "muted" }, formatSize(file.size, lang)),
          h(
            "button",
            {
              type: "button",
              class: "upload-remove",
              "aria-label": t("upload.removeFile", { name: file.name }),
              onClick: () => {
                files.splice(index, 1);
                renderFiles();
                chooseButton.focus();
              },
            },
            icon(ICONS.close, { size: 16 }),
          ),
        ),
      ),
    );
  }

  for (const name of ["dragenter", "dragover"]) {
    dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      dropZone.classList.add("is-over");
    });
  }
  dropZone.addEventListener("dragleave", (event) => {
    if (!dropZone.contains(event.relatedTarget)) {
      dropZone.classList.remove("is-over");
    }
  });
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("is-over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      addFiles(event.dataTransfer.files);
    }
  });
  // A file dropped beside the zone must not make the browser leave the app to open it.
  const keepDrops = (event) => {
    if (!dropZone.contains(event.target)) {
      event.preventDefault();
    }
  };
  window.addEventListener("dragover", keepDrops);
  window.addEventListener("drop", keepDrops);

  // ----- the session's details ---------------------------------------------------------------------------------

  const title = h("input", { id: "upload-title", maxlength: "300", "aria-describedby": "upload-title-hint" });
  const kind = select("upload-kind", KINDS, (value) => kindLabel(t, value), "circle");
  const community = h("input", {
    id: "upload-community",
    list: "upload-community-list",
    maxlength: "100",
    autocomplete: "off",
    required: true,
    "aria-describedby": "upload-community-error",
  });
  const communityError = h("p", { id: "upload-community-error", class: "error field-error" });
  const date = h("input", { id: "upload-date", type: "date", value: today(), required: true, max: today() });
  const dateError = h("p", { id: "upload-date-error", class: "error field-error" });
  date.setAttribute("aria-describedby", "upload-date-error");
  const visibility = select(
    "upload-visibility",
    VISIBILITIES,
    (value) => visibilityLabel(t, value),
    DEFAULT_VISIBILITY.circle,
  );
  visibility.setAttribute("aria-describedby", "upload-visibility-hint upload-visibility-warning");
  const visibilityHint = h("p", { id: "upload-visibility-hint", class: "hint" });
  const visibilityWarning = h("p", { id: "upload-visibility-warning", class: "upload-warning" });
  let visibilityChosen = false;

  function describeVisibility() {
    visibilityHint.textContent = {
      public: t("upload.visibility.publicHint"),
      community: t("upload.visibility.communityHint"),
      private: t("upload.visibility.privateHint"),
    }[visibility.value];
    visibilityWarning.textContent =
      kind.value === "mentoring" && visibility.value !== "private" ? t("upload.visibility.mentoringWarning") : "";
  }

  visibility.addEventListener("change", () => {
    visibilityChosen = true;
    describeVisibility();
  });
  kind.addEventListener("change", () => {
    if (!visibilityChosen) {
      visibility.value = DEFAULT_VISIBILITY[kind.value];
    }
    rows.forEach((row, index) => row.followKind(index));
    describeVisibility();
  });
  community.addEventListener("input", () => {
    communityError.textContent = "";
  });
  date.addEventListener("input", () => {
    dateError.textContent = "";
  });

  // ----- participants ------------------------------------------------------------------------------------------

  const rows = [];
  const rowList = h("ul", { class: "upload-participants", id: "upload-participants" });
  let rowCount = 0;

  function defaultRole(index) {
    const roles = DEFAULT_ROLES[kind.value];
    return roles[Math.min(index, roles.length - 1)];
  }

  function addRow(name = "") {
    rowCount += 1;
    const id = `upload-participant-${rowCount}`;
    const nameInput = h("input", {
      id: `${id}-name`,
      list: "upload-people-list",
      maxlength: "200",
      autocomplete: "off",
      value: name,
      onInput: () => suggestSoon(nameInput.value),
    });
    const role = select(`${id}-role`, ROLES, (value) => roleLabel(t, value), defaultRole(rows.length));
    let roleChosen = false;
    role.addEventListener("change", () => {
      roleChosen = true;
    });
    const item = h(
      "li",
      { class: "upload-participant" },
      h("div", { class: "field" }, h("label", { for: `${id}-name` }, t("upload.participantName")), nameInput),
      h("div", { class: "field" }, h("label", { for: `${id}-role` }, t("upload.participantRole")), role),
    );
    const row = {
      item,
      nameInput,
      followKind(index) {
        if (!roleChosen) {
          role.value = defaultRole(index);
        }
      },
      value: () => ({ name: nameInput.value.trim(), role: role.value }),
    };
    item.append(
      h(
        "button",
        {
          type: "button",
          class: "button small upload-remove-row",
          "aria-label": t("upload.removeParticipant", { number: rows.length + 1 }),
          onClick: () => {
            rows.splice(rows.indexOf(row), 1);
            item.remove();
            addButton.focus();
          },
        },
        icon(ICONS.close, { size: 16 }),
      ),
    );
    rows.push(row);
    rowList.append(item);
    return row;
  }

  const addButton = h(
    "button",
    {
      type: "button",
      class: "button small",
      id: "upload-add-participant",
      onClick: () => addRow().nameInput.focus(),
    },
    t("upload.addParticipant"),
  );
  addRow(user.person || "");

  // ----- sending -----------------------------------------------------------------------------------------------

  const formError = h("p", { id: "upload-form-error", class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "button primary", id: "upload-submit" }, t("upload.submit"));
  const results = h("section", { id: "upload-results", class: "upload-results", "aria-label": t("upload.results") });

  function metadata(single) {
    const participants = rows.map((row) => row.value()).filter((participant) => participant.name);
    const fields = {
      kind: kind.value,
      community: community.value.trim(),
      date: date.value,
      visibility: visibility.value,
      participants,
    };
    // Several documents keep their own titles (from their headings); one document may be given a title.
    if (single && title.value.trim()) {
      fields.title = title.value.trim();
    }
    return fields;
  }

  function validate(items) {
    let valid = true;
    formError.textContent = "";
    if (!community.value.trim()) {
      communityError.textContent = t("upload.communityRequired");
      valid = false;
    }
    if (!date.value) {
      dateError.textContent = t("upload.dateRequired");
      valid = false;
    } else if (date.value > today()) {
      dateError.textContent = t("upload.dateFuture");
      valid = false;
    }
    if (!items.length) {
      formError.textContent = t("upload.nothing");
      (valid ? chooseButton : community).focus();
      return false;
    }
    if (!valid) {
      (community.value.trim() ? date : community).focus();
    }
    return valid;
  }

  async function onSubmit(event) {
    event.preventDefault();
    if (busy) {
      return;
    }
    const items = files.map((file) => ({ file, name: file.name }));
    if (text.value.trim()) {
      items.push({ text: text.value, name: t("upload.pastedText") });
    }
    if (!validate(items)) {
      return;
    }
    const fields = metadata(items.length === 1);
    busy = true;
    submit.disabled = true;
    files.splice(0, files.length);
    renderFiles();
    text.value = "";
    results.replaceChildren(h("h2", {}, t("upload.results")));
    const cards = items.map((item) => new ItemCard(item));
    results.append(...cards.map((card) => card.element));
    results.scrollIntoView({ block: "start" });
    let stored = 0;
    try {
      for (const card of cards) {
        if (await card.run(fields)) {
          stored += 1;
        }
      }
      ctx.announce(t("upload.finished", { stored, failed: cards.length - stored }));
    } catch (error) {
      if (error.name !== "AbortError") {
        throw error;
      }
    } finally {
      busy = false;
      submit.disabled = false;
    }
  }

  // ----- one document's progress, job and drafts -----------------------------------------------------------

  class ItemCard {
    constructor(item) {
      this.item = item;
      this.steps = {
        send: h("li", { dataset: { state: "pending" } }, t("upload.step.send")),
        read: h("li", { dataset: { state: "pending" } }, t("upload.step.read")),
        extract: h("li", { dataset: { state: "pending" } }, t("upload.step.extract")),
        drafts: h("li", { dataset: { state: "pending" } }, t("upload.step.drafts")),
      };
      this.progress = h("progress", { max: "100", value: "0", "aria-label": t("upload.progress", { name: item.name }) });
      this.status = h("p", { class: "upload-status", role: "status" }, t("upload.waiting"));
      this.problem = h("div", { class: "upload-problem" });
      this.drafts = h("div", { class: "upload-drafts" });
      this.element = h(
        "article",
        { class: "card upload-item", dataset: { state: "waiting" } },
        h(
          "header",
          { class: "upload-item-header" },
          h("h3", {}, item.name),
          item.file ? h("span", { class: "muted" }, formatSize(item.file.size, lang)) : null,
        ),
        h("ol", { class: "upload-steps", "aria-label": t("upload.stepsLabel") }, Object.values(this.steps)),
        this.progress,
        this.status,
        this.problem,
        this.drafts,
      );
    }

    step(name, state) {
      this.steps[name].dataset.state = state;
      this.steps[name].setAttribute("aria-current", state === "current" ? "step" : "false");
    }

    say(message) {
      this.status.textContent = message;
    }

    fail(step, message, detail) {
      this.step(step, "failed");
      this.element.dataset.state = "failed";
      this.progress.remove();
      this.status.textContent = "";
      this.problem.replaceChildren(
        h(
          "div",
          { class: "upload-error", role: "alert" },
          icon(ICONS.alert),
          h("p", { class: "error" }, message),
          detail
            ? h("details", {}, h("summary", {}, t("upload.technicalDetail")), h("p", { class: "muted" }, detail))
            : null,
        ),
      );
    }

    async run(fields) {
      this.element.dataset.state = "running";
      let saved;
      try {
        saved = await this.send(fields);
        if (saved.attempts !== undefined) {
          saved = await this.followUpload(saved.id);
        }
      } catch (error) {
        if (error.name === "AbortError") {
          throw error;
        }
        const step = this.steps.send.dataset.state === "done" ? "read" : "send";
        this.fail(step, uploadError(t, error, this.item.name), error instanceof ApiError ? error.detail : "");
        return false;
      }
      this.step("read", "done");
      this.progress.value = 100;
      this.say(
        {
          created: t("upload.stored.created", { chunks: saved.chunks }),
          replaced: t("upload.stored.replaced", { chunks: saved.chunks }),
          unchanged: t("upload.stored.unchanged"),
        }[saved.status] || t("upload.stored.created", { chunks: saved.chunks }),
      );
      this.element.dataset.noteId = saved.note_id;
      try {
        await this.followJob(saved.note_id, saved.status === "unchanged");
      } catch (error) {
        if (error.name === "AbortError") {
          throw error;
        }
        // The note is stored: only following its extraction failed; its drafts still reach the review queue.
        this.progress.remove();
        this.fail(this.steps.extract.dataset.state === "done" ? "drafts" : "extract", describeError(t, error));
      }
      return true;
    }

    async send(fields) {
      this.step("send", "current");
      this.say(t("upload.sending", { name: this.item.name }));
      if (!this.item.file) {
        this.progress.removeAttribute("value");
        const saved = await api.post("/api/notes", { text: this.item.text, ...fields });
        this.step("send", "done");
        return saved;
      }
      const form = new FormData();
      form.append("file", this.item.file, this.item.file.name);
      for (const [name, value] of Object.entries(fields)) {
        form.append(name, name === "participants" ? JSON.stringify(value) : value);
      }
      return api.upload("/api/notes", form, (event) => {
        if (event.lengthComputable) {
          this.progress.value = Math.round((100 * event.loaded) / event.total);
        }
        if (event.loaded === event.total) {
          // Every byte sent: the server now reads and cuts the document before it answers.
          this.step("send", "done");
          this.step("read", "current");
          this.progress.removeAttribute("value");
          this.say(t("upload.reading", { name: this.item.name }));
        }
      });
    }

    async followUpload(uploadId) {
      // With a broker the document waits for a worker: follow the upload until it holds a note.
      this.step("send", "done");
      this.step("read", "current");
      this.progress.removeAttribute("value");
      this.say(t("upload.queued", { name: this.item.name }));
      for (;;) {
        const upload = await api.get(`/api/notes/uploads/${encodeURIComponent(uploadId)}`, {}, { signal });
        if (upload.status === "done") {
          return { note_id: upload.note_id, status: upload.result, chunks: upload.chunks };
        }
        if (upload.status === "failed") {
          throw new ApiError(422, upload.error_code || "unknown", upload.detail || "");
        }
        await sleep(POLL_MS, signal);
      }
    }

    async followJob(noteId, unchanged) {
      this.step("extract", "current");
      this.progress.removeAttribute("value");
      const started = Date.now();
      let job = null;
      for (;;) {
        const { jobs } = await api.get("/api/jobs", { note_id: noteId, limit: 1 }, { signal });
        job = jobs[0] || null;
        if (job && FINISHED.has(job.status)) {
          break;
        }
        const waited = Date.now() - started;
        if ((!job && unchanged && waited > NO_JOB_MS) || waited > POLL_LIMIT_MS) {
          break;
        }
        this.say(job && job.status === "running" ? t("upload.extracting") : t("upload.extractionQueued"));
        await sleep(POLL_MS, signal);
      }
      this.progress.remove();
      if (job && job.status === "failed") {
        this.fail("extract", t("upload.jobFailed"), job.detail || "");
        return;
      }
      if (job && !FINISHED.has(job.status)) {
        this.step("extract", "pending");
        this.say(t("upload.stillExtracting"));
        this.element.dataset.state = "done";
        return;
      }
      this.step("extract", "done");
      await this.showDrafts(noteId, job ? job.drafts : null);
    }

    async showDrafts(noteId, expected) {
      this.step("drafts", "current");
      const { practices } = await api.get("/api/practices", { note_id: noteId }, { signal });
      this.step("drafts", "done");
      this.element.dataset.state = "done";
      this.say(t("upload.done"));
      const count = practices.length;
      const heading =
        count === 0
          ? t("upload.draftsTitle.none")
          : count === 1
            ? t("upload.draftsTitle.one")
            : t("upload.draftsTitle.other", { count });
      const children = [h("h4", {}, heading)];
      if (count) {
        children.push(h("p", { class: "hint" }, canEdit ? t("upload.draftsHint") : t("upload.draftsReadOnly")));
        children.push(h("ul", { class: "upload-draft-list" }, practices.map((entry) => draftItem(entry))));
      } else if (expected) {
        // Extraction found drafts this account may not read: they wait for HR (or the session's leader).
        children.push(h("p", { class: "empty" }, t("upload.draftsHidden")));
      } else {
        children.push(h("p", { class: "empty" }, t("upload.noDrafts")));
      }
      this.drafts.replaceChildren(...children);
    }
  }

  // ----- a draft, readable then editable in place ---------------------------------------------------------

  function draftItem(entry) {
    const item = h("li", { class: "upload-draft", dataset: { practiceId: entry.id } });
    const message = h("p", { class: "upload-draft-message", role: "status" });

    function evidence(current) {
      return h(
        "div",
        { class: "upload-evidence" },
        h("h6", {}, t("upload.evidence")),
        h(
          "ul",
          {},
          current.evidence.map((span) =>
            h(
              "li",
              {},
              h("span", { class: "badge" }, claimLabel(t, span.claim)),
              h("blockquote", { class: "upload-quote" }, span.quote),
            ),
          ),
        ),
      );
    }

    function show(current, focusEdit = false) {
      const editButton =
        canEdit && current.status === "draft"
          ? h(
              "button",
              { type: "button", class: "button small", onClick: () => edit(current) },
              t("upload.correct"),
            )
          : null;
      const parts = [
        h(
          "div",
          { class: "upload-draft-head" },
          h("h5", { class: "upload-draft-title" }, current.title),
          h("span", { class: current.status === "draft" ? "badge warning" : "badge" }, statusLabel(t, current.status)),
        ),
        h("p", { class: "upload-draft-practice" }, current.practice),
        current.steps.length ? h("ol", { class: "upload-draft-steps" }, current.steps.map((s) => h("li", {}, s))) : null,
        evidence(current),
        editButton ? h("div", { class: "toolbar" }, editButton) : null,
        message,
      ];
      item.replaceChildren(...parts.filter(Boolean));
      if (focusEdit && editButton) {
        editButton.focus();
      }
    }

    function edit(current) {
      const base = `upload-edit-${current.id}`;
      const titleInput = h("input", { id: `${base}-title`, value: current.title, maxlength: "300", required: true });
      const practiceInput = h("textarea", { id: `${base}-practice`, rows: "4", required: true });
      practiceInput.value = current.practice;
      const save = h("button", { type: "submit", class: "button primary small" }, t("common.save"));
      const form = h(
        "form",
        {
          class: "upload-draft-form",
          novalidate: true,
          onSubmit: async (event) => {
            event.preventDefault();
            const changes = { title: titleInput.value.trim(), practice: practiceInput.value.trim() };
            if (!changes.title || !changes.practice) {
              message.textContent = t("upload.editEmpty");
              (changes.title ? practiceInput : titleInput).focus();
              return;
            }
            save.disabled = true;
            try {
              const updated = await api.patch(`/api/practices/${encodeURIComponent(current.id)}`, changes);
              show(updated, true);
              message.textContent = t("upload.saved");
            } catch (error) {
              save.disabled = false;
              message.textContent = describeError(t, error);
            }
          },
        },
        h("div", { class: "field" }, h("label", { for: `${base}-title` }, t("upload.draftTitle")), titleInput),
        h("div", { class: "field" }, h("label", { for: `${base}-practice` }, t("upload.draftPractice")), practiceInput),
        h(
          "div",
          { class: "toolbar" },
          save,
          h("button", { type: "button", class: "button small", onClick: () => show(current, true) }, t("common.cancel")),
        ),
      );
      item.replaceChildren(form, evidence(current), message);
      message.textContent = "";
      titleInput.focus();
    }

    show(entry);
    return item;
  }

  // ----- the page -----------------------------------------------------------------------------------------------

  describeVisibility();
  root.append(
    h("h1", {}, t("upload.title")),
    h("p", { class: "muted upload-intro" }, t("upload.intro")),
    h(
      "form",
      { id: "upload-form", class: "upload-form", novalidate: true, onSubmit, "aria-describedby": "upload-form-error" },
      h(
        "fieldset",
        { class: "card upload-documents" },
        h("legend", {}, t("upload.documents")),
        dropZone,
        fileList,
        h(
          "div",
          { class: "field" },
          h("label", { for: "upload-text" }, t("upload.paste")),
          text,
          h("p", { id: "upload-text-hint", class: "hint" }, t("upload.pasteHint")),
        ),
      ),
      h(
        "fieldset",
        { class: "card upload-session" },
        h("legend", {}, t("upload.session")),
        h(
          "div",
          { class: "upload-grid" },
          h(
            "div",
            { class: "field upload-wide" },
            h("label", { for: "upload-title" }, t("upload.noteTitle")),
            title,
            h("p", { id: "upload-title-hint", class: "hint" }, t("upload.noteTitleHint")),
          ),
          h("div", { class: "field" }, h("label", { for: "upload-kind" }, t("upload.kind")), kind),
          h(
            "div",
            { class: "field" },
            h("label", { for: "upload-community" }, t("upload.community")),
            community,
            communityList,
            communityError,
          ),
          h("div", { class: "field" }, h("label", { for: "upload-date" }, t("upload.date")), date, dateError),
          h(
            "div",
            { class: "field" },
            h("label", { for: "upload-visibility" }, t("upload.visibility")),
            visibility,
            visibilityHint,
            visibilityWarning,
          ),
        ),
      ),
      h(
        "fieldset",
        { class: "card upload-people" },
        h("legend", {}, t("upload.participants")),
        h("p", { class: "hint" }, t("upload.participantsHint")),
        rowList,
        peopleList,
        addButton,
      ),
      formError,
      h("div", { class: "toolbar" }, submit),
    ),
    results,
  );
  fillCommunities();
  suggest("");

  return () => {
    leaving.abort();
    clearTimeout(suggestTimer);
    window.removeEventListener("dragover", keepDrops);
    window.removeEventListener("drop", keepDrops);
  };
}
