// Apps: URL, SDK and version, sync status and last error, functions,
// resync, and adding an app by URL.

import { api } from "../api.js";
import { h, link, badge, when, empty, pageHead, act, toast } from "../ui.js";

function sdkLabel(sdk) {
  if (!sdk) return "unknown SDK";
  const [lang, version] = sdk.split(":");
  const name = { js: "JavaScript", py: "Python", go: "Go", rust: "Rust", kt: "Kotlin", java: "Java" }[lang] || lang;
  return version ? `${name} ${version.replace(/^v/, "v")}` : name;
}

function appCard(app, fns, reload) {
  const initials = app.id.replace(/[^a-zA-Z0-9]/g, " ").trim().split(/\s+/).slice(0, 2).map((w) => w[0]).join("").toUpperCase() || "A";
  const status = app.error ? badge("err", "Sync failed") : badge("ok", "Synced");
  return h("div.card.app-card", { "data-testid": "app-card", "data-app": app.id },
    h("div.card-body",
      h("div.app-head",
        h("div.app-logo", initials),
        h("div", { style: { minWidth: 0, flex: 1 } }, h("div.name", app.id), h("div.url", { title: app.url }, app.url)),
        status,
        h("button.btn.small", { type: "button", "data-testid": "resync", onclick: (e) => act(e.currentTarget, () => api.resync(app.id), "Resynced").then(reload) }, "↻ Resync")),
      h("div.facts",
        h("div.fact", h("div.k", "SDK"), h("div.v", { "data-testid": "app-sdk" }, sdkLabel(app.sdk))),
        h("div.fact", h("div.k", "Framework"), h("div.v", app.framework || "—")),
        h("div.fact", h("div.k", "Last sync"), h("div.v", when(Date.parse(app.synced_at)))),
        h("div.fact", h("div.k", "Functions"), h("div.v", String(fns.length)))),
      app.error ? h("div.error-box", h("div.title", "Last sync error"), h("pre", app.error)) : null,
      fns.length ? h("div.chips", fns.map((f) => link(`/functions/${encodeURIComponent(f.slug)}`, h("span.chip", { class: f.paused ? "paused" : "" }, f.name, f.paused ? " (paused)" : "")))) : null));
}

export async function render(main) {
  const list = h("div.grid");
  const load = async () => {
    const [apps, fns] = await Promise.all([api.apps(), api.functions()]);
    list.replaceChildren(...(apps.length
      ? apps.map((a) => appCard(a, fns.filter((f) => f.app_id === a.id), load))
      : [h("div.card", empty("No apps synced", "Start your app with the Inngest SDK pointed at this server, or add its URL above."))]));
  };
  const input = h("input", { type: "url", placeholder: "http://localhost:3000/api/inngest", required: true, "data-testid": "app-url" });
  const form = h("form.add-app", {
    onsubmit: (e) => {
      e.preventDefault();
      const button = form.querySelector("button");
      act(button, () => api.addApp(input.value.trim()), "App synced").then((out) => { if (out) { input.value = ""; load(); } });
    },
  }, input, h("button.btn.primary", { type: "submit" }, "Add app"));
  main.append(
    pageHead({ title: "Apps", sub: "The apps this server calls, and whether their last sync worked." }),
    h("div.card", h("div.card-body", h("div.section-title", { style: { marginTop: 0 } }, "Add an app by URL"), form)),
    h("div", { style: { marginTop: "16px" } }, list));
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
