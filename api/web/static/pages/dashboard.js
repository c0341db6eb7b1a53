// Dashboard (HR, admins): the programme's measures over a period, each as a chart, its table and a CSV export.
// Every figure comes from GET /api/kpis, computed from what the reader may read; nothing is computed here.

import { barChart, legend, lineChart } from "../charts.js";
import { formatDate, h, useStylesheet } from "../dom.js";
import { describeError, kindLabel } from "../i18n.js";

// The vocabularies of retrieval.notes.NOTE_KINDS and retrieval.kpis.BUCKETS.
const KINDS = ["circle", "pair", "mentoring", "other"];
const BUCKETS = ["month", "week"];
const YEAR_DAYS = 364;
const MAX_PEOPLE = 12;

function isoDay(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 10);
}

function sourceLabel(t, source) {
  return { community: t("dashboard.skills.source.community"), tag: t("dashboard.skills.source.tag") }[source];
}

function field(id, label, control) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

function select(name, options, value) {
  return h(
    "select",
    { name },
    options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)),
  );
}

function dataTable(caption, headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table kpi-table" },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((header) => h("th", { scope: "col" }, header)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            {},
            row.map((cell, index) => (index === 0 ? h("th", { scope: "row" }, cell) : h("td", {}, cell))),
          ),
        ),
      ),
    ),
  );
}

export async function render(root, ctx) {
  const { api, t, lang } = ctx;
  useStylesheet("dashboard");
  const percent = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 });
  const number = new Intl.NumberFormat(lang);
  const rate = (value) => (value === null || value === undefined ? "–" : percent.format(value));
  const today = new Date();
  const filters = {
    date_from: isoDay(new Date(today.getTime() - YEAR_DAYS * 86400000)),
    date_to: isoDay(today),
    community: "",
    kind: "",
    bucket: "month",
  };
  let communities = [];

  const from = h("input", { type: "date", name: "date_from", value: filters.date_from, required: true });
  const to = h("input", { type: "date", name: "date_to", value: filters.date_to, required: true });
  const community = select("community", [["", t("dashboard.filters.allCommunities")]], "");
  const kind = select(
    "kind",
    [["", t("dashboard.filters.allKinds")], ...KINDS.map((value) => [value, kindLabel(t, value)])],
    "",
  );
  const bucket = select(
    "bucket",
    BUCKETS.map((value) => [value, { month: t("dashboard.filters.month"), week: t("dashboard.filters.week") }[value]]),
    filters.bucket,
  );
  const form = h(
    "form",
    { class: "card dashboard-filters", "aria-label": t("dashboard.filters.label") },
    h(
      "div",
      { class: "dashboard-filter-fields" },
      field("dashboard-from", t("dashboard.filters.from"), from),
      field("dashboard-to", t("dashboard.filters.to"), to),
      field("dashboard-community", t("dashboard.filters.community"), community),
      field("dashboard-kind", t("dashboard.filters.kind"), kind),
      field("dashboard-bucket", t("dashboard.filters.bucket"), bucket),
    ),
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "button primary" }, t("dashboard.filters.apply"))),
  );
  const status = h("p", { class: "muted dashboard-status", role: "status", "aria-live": "polite" });
  const content = h("div", { class: "dashboard-sections", "aria-live": "polite" });
  root.append(h("h1", {}, t("dashboard.title")), h("p", { class: "muted" }, t("dashboard.intro")), form, status, content);

  function query() {
    return Object.fromEntries(Object.entries(filters).filter(([, value]) => value));
  }

  function csvLink(measure) {
    const search = new URLSearchParams(query()).toString();
    return h(
      "a",
      {
        class: "button small csv-link",
        href: `/api/kpis/${measure}.csv${search ? `?${search}` : ""}`,
        download: `compagnon-${measure}.csv`,
        dataset: { measure },
      },
      t("dashboard.csv"),
    );
  }

  function section(measure, title, intro, ...body) {
    const heading = `dashboard-${measure}-title`;
    return h(
      "section",
      { class: "card kpi-section", id: `kpi-${measure}`, "aria-labelledby": heading, dataset: { measure } },
      h("div", { class: "kpi-head" }, h("h2", { id: heading }, title), csvLink(measure)),
      intro ? h("p", { class: "muted" }, intro) : null,
      ...body,
    );
  }

  function periodLabel(row) {
    return filters.bucket === "month"
      ? formatDate(row.period, lang, { month: "short", year: "numeric" })
      : t("dashboard.weekOf", { week: row.label, date: formatDate(row.period, lang) });
  }

  function participation(measure) {
    const names = [t("dashboard.participation.participants"), t("dashboard.participation.known")];
    const rows = measure.communities;
    const chart = rows.length
      ? barChart({
          title: t("dashboard.participation.chart"),
          labels: rows.map((row) => row.community),
          series: [
            { name: names[0], values: rows.map((row) => row.participants) },
            { name: names[1], values: rows.map((row) => row.known) },
          ],
          format: (value) => number.format(value),
        })
      : h("p", { class: "empty" }, t("dashboard.empty"));
    return section(
      "participation",
      t("dashboard.participation.title"),
      t("dashboard.participation.basis"),
      chart,
      rows.length ? legend(names) : null,
      dataTable(
        t("dashboard.participation.byCommunity"),
        [t("dashboard.col.community"), names[0], names[1], t("dashboard.col.rate")],
        rows.map((row) => [row.community, number.format(row.participants), number.format(row.known), rate(row.rate)]),
      ),
      dataTable(
        t("dashboard.participation.byFormat"),
        [t("dashboard.col.community"), t("dashboard.col.kind"), names[0], names[1], t("dashboard.col.rate")],
        measure.rows.map((row) => [
          row.community,
          kindLabel(t, row.kind),
          number.format(row.participants),
          number.format(row.known),
          rate(row.rate),
        ]),
      ),
    );
  }

  function activity(measure) {
    const names = [t("dashboard.activity.sessions"), t("dashboard.activity.turns"), t("dashboard.activity.questions")];
    const labels = measure.rows.map(periodLabel);
    return section(
      "activity",
      t("dashboard.activity.title"),
      t("dashboard.activity.basis"),
      lineChart({
        title: t("dashboard.activity.chart"),
        labels,
        series: [
          { name: names[0], values: measure.rows.map((row) => row.sessions) },
          { name: names[1], values: measure.rows.map((row) => row.turns) },
          { name: names[2], values: measure.rows.map((row) => row.questions) },
        ],
        format: (value) => number.format(value),
      }),
      legend(names),
      dataTable(
        t("dashboard.activity.table"),
        [t("dashboard.col.period"), ...names, t("dashboard.activity.exchanges")],
        measure.rows.map((row, index) => [
          labels[index],
          number.format(row.sessions),
          number.format(row.turns),
          number.format(row.questions),
          number.format(row.exchanges),
        ]),
      ),
    );
  }

  function feedback(measure) {
    const names = [t("dashboard.feedback.up"), t("dashboard.feedback.down")];
    const labels = measure.rows.map(periodLabel);
    const comments = measure.comments.length
      ? h(
          "ul",
          { class: "kpi-comments" },
          measure.comments.map((comment) =>
            h(
              "li",
              {},
              h(
                "span",
                { class: comment.rating > 0 ? "badge success" : "badge danger" },
                comment.rating > 0 ? t("dashboard.feedback.upShort") : t("dashboard.feedback.downShort"),
              ),
              h("p", { class: "kpi-comment" }, comment.comment),
              h(
                "p",
                { class: "muted" },
                t("dashboard.feedback.on", { question: comment.question, date: formatDate(comment.at, lang) }),
              ),
            ),
          ),
        )
      : h("p", { class: "empty" }, t("dashboard.feedback.noComments"));
    return section(
      "feedback",
      t("dashboard.feedback.title"),
      t("dashboard.feedback.total", {
        up: number.format(measure.totals.up),
        down: number.format(measure.totals.down),
        rate: rate(measure.totals.rate),
      }),
      barChart({
        title: t("dashboard.feedback.chart"),
        labels,
        series: [
          { name: names[0], values: measure.rows.map((row) => row.up) },
          { name: names[1], values: measure.rows.map((row) => row.down) },
        ],
        format: (value) => number.format(value),
      }),
      legend(names),
      dataTable(
        t("dashboard.feedback.table"),
        [t("dashboard.col.period"), ...names, t("dashboard.feedback.rate")],
        measure.rows.map((row, index) => [labels[index], number.format(row.up), number.format(row.down), rate(row.rate)]),
      ),
      h("h3", {}, t("dashboard.feedback.comments")),
      comments,
      h("p", { class: "muted" }, t("dashboard.programmeWide")),
    );
  }

  function skills(measure) {
    const names = [t("dashboard.skills.topics"), t("dashboard.skills.newTopics")];
    const people = measure.people.slice(0, MAX_PEOPLE);
    return section(
      "skills",
      t("dashboard.skills.title"),
      t("dashboard.skills.basis"),
      people.length
        ? barChart({
            title: t("dashboard.skills.chart"),
            labels: people.map((person) => person.person),
            series: [
              { name: names[0], values: people.map((person) => person.topics) },
              { name: names[1], values: people.map((person) => person.new_topics) },
            ],
            format: (value) => number.format(value),
          })
        : h("p", { class: "empty" }, t("dashboard.empty")),
      people.length ? legend(names) : null,
      dataTable(
        t("dashboard.skills.table"),
        [
          t("dashboard.col.person"),
          t("dashboard.col.period"),
          t("dashboard.col.topic"),
          t("dashboard.col.source"),
          t("dashboard.col.contributions"),
          t("dashboard.col.new"),
        ],
        measure.rows.map((row) => [
          h("a", { href: `#/people/${encodeURIComponent(row.person)}` }, row.person),
          periodLabel(row),
          row.topic,
          sourceLabel(t, row.source),
          number.format(row.contributions),
          row.new ? t("dashboard.yes") : t("dashboard.no"),
        ]),
      ),
    );
  }

  function gaps(measure) {
    const groups = measure.groups.length
      ? h(
          "ol",
          { class: "kpi-gaps" },
          measure.groups.map((group) =>
            h(
              "li",
              { class: "kpi-gap" },
              h(
                "h3",
                {},
                h("span", { class: "badge warning" }, number.format(group.count)),
                " ",
                h("span", { class: "kpi-gap-topic" }, group.topic),
              ),
              h(
                "p",
                { class: "muted" },
                t("dashboard.gaps.counts", {
                  unanswered: number.format(group.unanswered),
                  down: number.format(group.rated_down),
                }),
              ),
              group.tags.length
                ? h("ul", { class: "chips", "aria-label": t("dashboard.gaps.tags") }, group.tags.map((tag) => h("li", { class: "chip" }, tag)))
                : null,
              h("p", { class: "kpi-gap-label" }, t("dashboard.gaps.examples")),
              h(
                "ul",
                { class: "kpi-examples" },
                group.examples.map((example) =>
                  h(
                    "li",
                    {},
                    h("q", {}, example.question),
                    " ",
                    h(
                      "span",
                      { class: "muted" },
                      example.reason === "unanswered" ? t("dashboard.gaps.unanswered") : t("dashboard.gaps.ratedDown"),
                      " · ",
                      formatDate(example.asked_at, lang),
                    ),
                  ),
                ),
              ),
              h("p", { class: "kpi-gap-label" }, t("dashboard.gaps.suggested")),
              group.suggested.length
                ? h(
                    "ul",
                    { class: "chips kpi-people" },
                    group.suggested.map((name) =>
                      h("li", {}, h("a", { class: "chip", href: `#/people/${encodeURIComponent(name)}` }, name)),
                    ),
                  )
                : h("p", { class: "empty" }, t("dashboard.gaps.nobody")),
            ),
          ),
        )
      : h("p", { class: "empty" }, t("dashboard.gaps.none"));
    return section(
      "gaps",
      t("dashboard.gaps.title"),
      t("dashboard.gaps.total", { count: number.format(measure.total) }),
      groups,
      h("p", { class: "muted" }, t("dashboard.programmeWide")),
    );
  }

  function review(measure) {
    const names = [
      t("dashboard.review.drafted"),
      t("dashboard.review.approved"),
      t("dashboard.review.rejected"),
      t("dashboard.review.due"),
    ];
    const labels = measure.rows.map(periodLabel);
    const current = measure.current;
    return section(
      "review",
      t("dashboard.review.title"),
      t("dashboard.review.current", {
        draft: number.format(current.draft),
        approved: number.format(current.approved),
        rejected: number.format(current.rejected),
        due: number.format(current.due_now),
      }),
      barChart({
        title: t("dashboard.review.chart"),
        labels,
        series: ["drafted", "approved", "rejected", "due"].map((key, index) => ({
          name: names[index],
          values: measure.rows.map((row) => row[key]),
        })),
        format: (value) => number.format(value),
      }),
      legend(names),
      dataTable(
        t("dashboard.review.table"),
        [t("dashboard.col.period"), ...names],
        measure.rows.map((row, index) => [
          labels[index],
          number.format(row.drafted),
          number.format(row.approved),
          number.format(row.rejected),
          number.format(row.due),
        ]),
      ),
    );
  }

  function offerCommunities(names) {
    communities = names;
    const options = [["", t("dashboard.filters.allCommunities")], ...communities.map((name) => [name, name])];
    if (filters.community && !communities.includes(filters.community)) {
      options.push([filters.community, filters.community]);
    }
    community.replaceChildren(
      ...options.map(([value, text]) => h("option", { value, selected: value === filters.community }, text)),
    );
  }

  async function load() {
    status.textContent = t("common.loading");
    content.setAttribute("aria-busy", "true");
    try {
      const report = await api.get("/api/kpis", query());
      offerCommunities(report.communities);
      content.replaceChildren(
        participation(report.participation),
        activity(report.activity),
        feedback(report.feedback),
        skills(report.skills),
        gaps(report.gaps),
        review(report.review),
      );
      status.textContent = t("dashboard.updated", {
        from: formatDate(report.period.date_from, lang),
        to: formatDate(report.period.date_to, lang),
      });
    } catch (error) {
      content.replaceChildren(h("p", { class: "error", role: "alert" }, describeError(t, error)));
      status.textContent = "";
    } finally {
      content.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(filters, {
      date_from: from.value,
      date_to: to.value,
      community: community.value,
      kind: kind.value,
      bucket: bucket.value,
    });
    load();
  });
  await load();
}
