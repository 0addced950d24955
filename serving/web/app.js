// The prediction page: talks to this server's TF Serving REST API only
// (GET /ui/models for the list of models, POST .../:predict for predictions).
// Everything from the server is shown with textContent, never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
let models = [];

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("result").hidden = true;
}

function currentModel() {
  return models.find((m) => m.name === $("model").value);
}

function fillVersions() {
  const m = currentModel();
  const sel = $("version");
  sel.replaceChildren();
  const add = (value, text) => {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; sel.appendChild(o);
  };
  add("", "latest");
  if (!m) return;
  for (const v of m.versions) add("v:" + v.version, "version " + v.version + " (" + v.state + ")");
  for (const [label, v] of Object.entries(m.labels)) add("l:" + label, "label " + label + " -> " + v);
  showProvenance();
}

function servedVersion() {
  const m = currentModel();
  if (!m) return null;
  const choice = $("version").value;
  if (choice.startsWith("v:")) return Number(choice.slice(2));
  if (choice.startsWith("l:")) return m.labels[choice.slice(2)];
  const ready = m.versions.filter((v) => v.state === "AVAILABLE").map((v) => v.version);
  return ready.length ? Math.max(...ready) : null;
}

function showProvenance() {
  const m = currentModel();
  const version = servedVersion();
  const v = m && m.versions.find((x) => x.version === version);
  // A text model gets a text box; an image model the drop zone.
  const text = !!(v && v.model && v.model.modality === "text");
  $("text-box").hidden = !text;
  $("drop").hidden = text;
  const table = $("provenance");
  table.replaceChildren();
  $("model-info").textContent = v && v.model ?
    (v.model.classes || []).length + " classes, backbone " + v.model.backbone +
    (text ? ", text" : ", " + v.model.image_size + " px") : "";
  if (!v || !v.provenance) { $("provenance-box").hidden = true; return; }
  for (const [k, val] of Object.entries(v.provenance)) {
    if (typeof val === "object" && val !== null) continue;
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = k;
    const td = document.createElement("td"); td.textContent = String(val);
    tr.append(th, td); table.appendChild(tr);
  }
  $("provenance-box").hidden = false;
}

function predictUrl() {
  const name = encodeURIComponent($("model").value);
  const choice = $("version").value;
  let path = "/v1/models/" + name;
  if (choice.startsWith("v:")) path += "/versions/" + encodeURIComponent(choice.slice(2));
  if (choice.startsWith("l:")) path += "/labels/" + encodeURIComponent(choice.slice(2));
  return path + ":predict";
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).split(",", 2)[1] || "");
    r.onerror = () => reject(new Error("could not read " + file.name));
    r.readAsDataURL(file);
  });
}

async function predict(file) {
  const preview = $("preview");
  if (file.type.startsWith("image/")) { preview.src = URL.createObjectURL(file); preview.hidden = false; }
  else { preview.hidden = true; }
  await send({b64: await readBase64(file)});
}

async function send(instance) {
  $("error").hidden = true;
  if (!$("model").value) { showError("This server has no model loaded yet."); return; }
  const t0 = performance.now();
  let response, body;
  try {
    response = await fetch(predictUrl(), {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({instances: [instance]}),
    });
    body = await response.json();
  } catch (e) {
    showError("The server did not answer: " + e.message);
    return;
  }
  const ms = performance.now() - t0;
  if (!response.ok || body.error) {
    showError("The server said (HTTP " + response.status + "): " + (body.error || "no message"));
    return;
  }
  const p = body.predictions[0];
  const pairs = p.classes.map((c, i) => [c, p.scores[i]]).sort((a, b) => b[1] - a[1]).slice(0, 5);
  $("label").textContent = p.label;
  const bars = $("bars");
  bars.replaceChildren();
  for (const [name, score] of pairs) {
    const row = document.createElement("div"); row.className = "bar";
    const n = document.createElement("span"); n.className = "name"; n.textContent = name;
    const track = document.createElement("div"); track.className = "track";
    const fill = document.createElement("div"); fill.className = "fill";
    fill.style.width = (100 * Math.max(0, Math.min(1, score))).toFixed(1) + "%";
    track.appendChild(fill);
    const s = document.createElement("span"); s.className = "score"; s.textContent = score.toFixed(3);
    row.append(n, track, s); bars.appendChild(row);
  }
  $("latency").textContent = ms.toFixed(1);
  const v = servedVersion();
  $("served-by").textContent = $("model").value + (v === null ? "" : " version " + v);
  $("result").hidden = false;
}

async function load() {
  try {
    const r = await fetch("/ui/models");
    models = (await r.json()).models || [];
  } catch (e) {
    showError("Could not list the models: " + e.message);
    return;
  }
  const sel = $("model");
  for (const m of models) {
    const o = document.createElement("option"); o.value = m.name; o.textContent = m.name; sel.appendChild(o);
  }
  fillVersions();
  document.body.dataset.ready = "1";
}

$("model").addEventListener("change", fillVersions);
$("version").addEventListener("change", showProvenance);
$("classify-text").addEventListener("click", () => send($("text").value));
$("file").addEventListener("change", (e) => { if (e.target.files[0]) predict(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) predict(e.dataTransfer.files[0]);
});
load();
