"""The run report as one self-contained HTML page: plots drawn with matplotlib as
inline SVG, thumbnails as data URIs, no scripts and no network fetches (it is read
from a file, a CI artifact, or an email). The HTML comes from a jinja2 template with
autoescaping on: class names and file names are the user's data."""
from __future__ import annotations

import io
from typing import Dict, List, Optional

import jinja2

from graft.components.blessing_report import reading

CHALLENGER, CHAMPION = "#1f6feb", "#8b949e"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # no display; must precede pyplot's import
    import matplotlib.pyplot as plt
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # inline: drop the XML prolog and DOCTYPE


def class_counts_plot(train: Dict[str, int], held_out: Dict[str, int]) -> str:
    plt = _pyplot()
    classes = sorted(set(train) | set(held_out))
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(classes) + 1))
    y = range(len(classes))
    ax.barh([i + 0.2 for i in y], [train.get(c, 0) for c in classes], 0.4, label="train",
            color=CHALLENGER)
    ax.barh([i - 0.2 for i in y], [held_out.get(c, 0) for c in classes], 0.4,
            label="held-out", color=CHAMPION)
    ax.set_yticks(list(y), classes)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _svg(fig)


def cv_curve_plot(curve: List[List[float]], chosen: float) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.semilogx([c for c, _ in curve], [a for _, a in curve], "o-", color=CHALLENGER)
    ax.axvline(chosen, color="#d29922", linestyle="--", label=f"chosen C={chosen:g}")
    ax.set_xlabel("C (inverse L2 strength)")
    ax.set_ylabel("cross-validation accuracy")
    ax.legend()
    return _svg(fig)


def epochs_plot(history: List[Dict[str, float]], phase1_val_loss: Optional[float]) -> str:
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    epochs = [h["epoch"] for h in history]
    for key, style in (("loss", "-"), ("val_loss", "--")):
        left.plot(epochs, [h.get(key) for h in history], style, marker="o", label=key)
    if phase1_val_loss is not None:
        left.axhline(phase1_val_loss, color="#d29922", linestyle=":",
                     label="phase 1 val_loss")
    for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
        right.plot(epochs, [h.get(key) for h in history], style, marker="o", label=key)
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.legend()
    return _svg(fig)


def per_class_plot(challenger: Dict[str, float], champion: Optional[Dict[str, float]]) -> str:
    plt = _pyplot()
    classes = sorted(challenger)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(classes) + 1))
    y = list(range(len(classes)))
    if champion:
        ax.barh([i - 0.2 for i in y], [champion.get(c, 0) for c in classes], 0.4,
                label="champion", color=CHAMPION)
    ax.barh([i + (0.2 if champion else 0) for i in y], [challenger[c] for c in classes],
            0.4 if champion else 0.6, label="challenger", color=CHALLENGER)
    ax.set_yticks(y, classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("held-out accuracy")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _svg(fig)


# A cell's number is unreadable beyond this many classes, and the numbers made the SVG grow
# with the square of the classes (120 classes: 28 s and 9 MB a model, measured): beyond it
# the matrix is an image alone, and the report lists the most confused pairs.
ANNOTATE_MAX_CLASSES = 30
LABEL_MAX_CLASSES = 80


def confusion_plot(matrix: List[List[int]], classes: List[str], normalised: bool,
                   title: str) -> str:
    plt = _pyplot()
    n = len(classes)
    values = [[(v / max(1, sum(row))) if normalised else v for v in row] for row in matrix]
    side = min(0.6 * n + 2.5, 12.0)
    fig, ax = plt.subplots(figsize=(side, side - 0.5))
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalised else None,
                   interpolation="nearest")
    if n <= ANNOTATE_MAX_CLASSES:
        top = max(max(r) for r in values) if values else 0
        for i in range(n):
            for j in range(n):
                v = values[i][j]
                ax.text(j, i, f"{v:.2f}" if normalised else f"{v}", ha="center", va="center",
                        fontsize=8, color="white" if v > top / 2 else "black")
    if n <= LABEL_MAX_CLASSES:
        size = 8 if n <= ANNOTATE_MAX_CLASSES else 5
        ax.set_xticks(range(n), classes, rotation=45 if n <= ANNOTATE_MAX_CLASSES else 90,
                      ha="right" if n <= ANNOTATE_MAX_CLASSES else "center", fontsize=size)
        ax.set_yticks(range(n), classes, fontsize=size)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"predicted ({n} classes, in the label vocabulary's order)")
        ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _svg(fig)


def most_confused(matrix: List[List[int]], classes: List[str], k: int = 10) -> List[Dict]:
    """The k largest off-diagonal cells: which true class went to which, how often, and
    what share of the true class that is."""
    cells = [(matrix[i][j], i, j) for i in range(len(matrix)) for j in range(len(matrix[i]))
             if i != j and matrix[i][j] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": classes[i], "predicted": classes[j], "count": count,
             "share": count / max(1, sum(matrix[i]))} for count, i, j in cells[:k]]


_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>graft run report: {{ f.model_name }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#1f2328}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#f6f8fa}.verdict{padding:.6em 1em;border-radius:6px;font-weight:600}
.blessed{background:#dafbe1}.not-blessed{background:#ffebe9}.plots{display:flex;flex-wrap:wrap;gap:1em}
.plots figure{margin:0}.mistakes{display:flex;flex-wrap:wrap;gap:10px}
.mistake{width:150px;font-size:12px;overflow-wrap:anywhere;border:1px solid #d0d7de;border-radius:6px;padding:6px}
.mistake.text{width:300px}.mistake blockquote{margin:0 0 4px;font-style:italic}
.mistake img{display:block;margin:0 auto 4px;max-width:112px;max-height:112px}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px}.muted{color:#57606a}
</style></head><body>
<h1>graft run report: {{ f.model_name }}</h1>
<p class="muted">pipeline {{ f.pipeline_name }} &middot; run {{ f.run_id }}{% if f.spans and f.spans != [0] %} &middot; spans {{ f.spans|join(', ') }}{% endif %}</p>
{% set ev = f.evaluation %}
<p id="verdict" class="verdict {{ 'blessed' if ev and ev.blessed else 'not-blessed' }}">{{ ev.headline if ev else 'no evaluation recorded' }}</p>
<p id="push">{% if f.push.pushed %}Pushed as version <b>{{ f.push.version }}</b> to <code>{{ f.push.path }}</code>; model card: <code>{{ f.push.model_card }}</code>.
{% elif f.push.not_pushed_reason %}Not pushed: {{ f.push.not_pushed_reason }}.
{% else %}Not pushed: the model was not blessed, so the model in production is unchanged.{% endif %}</p>

<h2>Data</h2>
<p>{{ f.data.total }} images in {{ f.data.counts|length }} classes{% if f.statistics.train %}; split: {{ f.statistics.train.examples }} train, {{ f.statistics.eval.examples if f.statistics.eval else 0 }} held-out (this run's new data){% endif %}.
{% if f.data.copies %} Identical copies kept once: {{ f.data.copies }} files left out.{% endif %}
{% if f.data.conflicts %} Label conflicts: {{ f.data.conflicts|length }} files left out (the same image under two or more classes).{% endif %}</p>
<div class="plots"><figure>{{ plots.counts|safe }}<figcaption>images per class (train from the trainer, held-out from the evaluation)</figcaption></figure></div>
{% if f.data.skipped %}<h3>Skipped files ({{ f.data.skipped|length }})</h3><table><tr><th>file</th><th>reason</th></tr>
{% for s in f.data.skipped[:20] %}<tr><td>{{ s.image_id }}</td><td>{{ s.reason }}</td></tr>{% endfor %}</table>{% if f.data.skipped|length > 20 %}<p class="muted">and {{ f.data.skipped|length - 20 }} more (report.json lists all)</p>{% endif %}{% endif %}
{% for split, st in f.statistics.items() %}<h3>TFDV statistics: {{ split }} split ({{ st.examples }} examples)</h3>
<table><tr><th>feature</th><th>type</th><th>present</th><th>detail</th></tr>{% for r in st.features %}<tr><td>{{ r.feature }}</td><td>{{ r.type }}</td><td>{{ r.present }}</td><td>{{ r.detail }}</td></tr>{% endfor %}</table>{% endfor %}
{% if f.mistakes.examined and f.mistakes.lengths %}<p>Held-out texts seen by the report: {{ f.mistakes.examined }}; {{ f.mistakes.lengths.characters.min }}-{{ f.mistakes.lengths.characters.max }} characters (median {{ f.mistakes.lengths.characters.median }}), {{ f.mistakes.lengths.words.min }}-{{ f.mistakes.lengths.words.max }} words (median {{ f.mistakes.lengths.words.median }}).</p>
{% elif f.mistakes.examined %}<p>Held-out images seen by the report: {{ f.mistakes.examined }}; formats: {% for k, v in f.mistakes.formats.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %};
width {{ f.mistakes.sizes.width.min }}-{{ f.mistakes.sizes.width.max }} px (median {{ f.mistakes.sizes.width.median }}), height {{ f.mistakes.sizes.height.min }}-{{ f.mistakes.sizes.height.max }} px (median {{ f.mistakes.sizes.height.median }}); the model resizes to {{ f.image_size }} px.</p>{% endif %}
{% if f.embedding %}<p>Embedding ({{ f.embedding.dim }}-d vectors of the frozen backbone): {{ f.embedding.embedded }} images embedded, {{ f.embedding.reused }} vectors reused from the cache when EmbeddingGen last ran on these examples.</p>{% endif %}

<h2>Training</h2>
{% set t = f.training %}{% if t %}
<h3>Phase 1: linear head on frozen features</h3>
<p>{{ t.phase1.head }} on {{ t.phase1.fit_images }} images; {% if t.phase1.get('heads', ['logistic']) == ['logistic'] %}C = {{ t.phase1.c }}{% if t.phase1.cv_folds %}, chosen by {{ t.phase1.cv_folds }}-fold cross-validation on {{ t.phase1.cv_rows }} images (accuracy {{ '%.3f'|format(t.phase1.cv_accuracy) }}){% else %} (too few images per class to cross-validate){% endif %}{% elif t.phase1.cv_folds and t.phase1.cv_accuracy is not none %}{{ t.phase1.cv_folds }}-fold cross-validated accuracy {{ '%.3f'|format(t.phase1.cv_accuracy) }} on {{ t.phase1.cv_rows }} images{% else %}too few images per class to cross-validate{% endif %}; train accuracy {{ '%.3f'|format(t.phase1.train_accuracy) }}.
Backbone variables changed: {{ t.phase1.backbone_variables_changed|length }} (measured: the backbone stayed frozen{% if t.phase1.backbone_variables_changed %} - NOT as expected{% endif %}).</p>
{% if plots.cv %}<div class="plots"><figure>{{ plots.cv|safe }}<figcaption>cross-validation accuracy per C</figcaption></figure></div>{% endif %}
{% if t.phase1.views %}<h3>Views: {{ t.phase1.views|length }} (backbone at input size), combined by {{ t.phase1.combine }}</h3>
<table><tr><th>view</th><th>features</th><th>C</th><th>CV accuracy alone</th></tr>
{% for v in t.phase1.views %}<tr><td>{{ v.view }}{% if v.head is defined and t.phase1.get('heads', [])|length > 1 %} ({{ v.head }}){% endif %}</td><td>{{ v.dim }}</td><td>{{ v.c if v.c is defined and v.get('head', 'logistic') == 'logistic' else '' }}</td><td>{% if v.cv_accuracy is defined and v.cv_accuracy is not none %}{{ '%.3f'|format(v.cv_accuracy) }}{% endif %}</td></tr>{% endfor %}</table>
<p>Cross-validated accuracy of each way to combine them: {% for k, v in t.phase1.combine_cv|dictsort %}{{ k }} {% if v is not none %}{{ '%.3f'|format(v) }}{% endif %}{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
{% if t.phase1.adaptation %}<h3>Domain adaptation (AdaBN)</h3>
{% for a in t.phase1.adaptation %}<p>{{ a.backbone }} at {{ a.image_size }} px: BatchNorm statistics re-estimated on {{ a.images }} images ({{ a.unlabeled_images_read }} of them unlabelled{% if a.unlabeled_skipped %}, {{ a.unlabeled_skipped|length }} unlabelled files skipped{% endif %}); measured: {{ a.statistics_changed }} moving statistics of {{ a.batchnorm_layers }} BatchNorm layers changed, other variables changed: {{ a.other_variables_changed|length }}.</p>{% endfor %}{% endif %}
{% if t.scratch and t.scratch.ran %}<h3>Transfer against training from scratch</h3>
<p>A small CNN trained from scratch on the same training images ({{ t.scratch.parameters }} parameters, {{ t.scratch.image_size }} px, {{ t.scratch.epochs }} epochs) scored {{ '%.3f'|format(t.scratch.held_out_accuracy) }} on the same {{ t.scratch.held_out_images }} held-out images.</p>{% endif %}
<h3>Phase 2: fine-tuning</h3>
{% if t.phase2.ran %}<p>{{ t.phase2.epochs }} epochs, top blocks unfrozen ({{ t.phase2.trainable_variables|length }} variables trainable); {% if t.phase2.kept %}kept epoch {{ t.phase2.best_epoch }} (validation accuracy {{ '%.3f'|format(t.phase2.best_val_accuracy) }}){% else %}dropped: no epoch beat phase 1 on validation loss, so phase 1's head was refit on every training image{% endif %}.
Variables that changed: {{ t.phase2.backbone_variables_changed|length }}{% if t.phase2.backbone_variables_changed %} ({{ t.phase2.backbone_variables_changed[:6]|join(', ') }}{% if t.phase2.backbone_variables_changed|length > 6 %}, ...{% endif %}){% endif %}.</p>
{% if plots.epochs %}<div class="plots"><figure>{{ plots.epochs|safe }}<figcaption>loss and accuracy per epoch</figcaption></figure></div>{% endif %}
{% if t.phase2.tensorboard_dir %}<p>TensorBoard logs: <code>tensorboard --logdir {{ t.phase2.tensorboard_dir }}</code></p>{% endif %}
{% else %}<p>Off for this run (see <code>[train] fine_tune</code>).</p>{% endif %}
{% else %}<p>No training report was found.</p>{% endif %}

<h2>Evaluation on the held-out split</h2>
{% if ev and ev.scored_on %}<p id="scored-on">{% if ev.scored_on == 'vectors' %}Scored as the models' heads on the held-out {{ 'texts' if f.modality == 'text' else 'images' }}' cached vectors: the backbones are the frozen ones that computed them, and the Trainer checked that the head gives the exported model's scores.{% else %}Scored as the full exported models on the held-out {{ 'texts' if f.modality == 'text' else 'images' }} ({{ ev.scored_on.split(': ', 1)[-1] }}).{% endif %}</p>{% endif %}
{% if ev %}<table><tr><th></th><th>challenger (this run)</th><th>champion (in production)</th></tr>
<tr><td>accuracy</td><td id="challenger-accuracy">{{ '%.3f'|format(ev.accuracy) if ev.accuracy is not none else '-' }}</td><td id="champion-accuracy">{{ '%.3f'|format(ev.champion_accuracy) if ev.champion_accuracy is not none else 'none yet (first run)' }}</td></tr></table>
<ul>{% for c in ev.checks %}<li>{{ c }}</li>{% endfor %}</ul>
<div class="plots"><figure>{{ plots.per_class|safe }}<figcaption>accuracy per class{% if not ev.champion_accuracy is not none %} (no champion yet: the challenger alone){% endif %}</figcaption></figure></div>
{% for cm in plots.confusion %}<h3>Confusion matrix: {{ cm.model }}</h3><div class="plots"><figure>{{ cm.counts|safe }}</figure><figure>{{ cm.normalised|safe }}</figure></div>
{% if cm.pairs %}<table><caption>most confused ({{ cm.model }})</caption><tr><th>true</th><th>predicted as</th><th>held-out images</th><th>share of the true class</th></tr>{% for p in cm.pairs %}<tr><td>{{ p.true }}</td><td>{{ p.predicted }}</td><td>{{ p.count }}</td><td>{{ '%.1f'|format(100 * p.share) }} %</td></tr>{% endfor %}</table>{% endif %}{% endfor %}
{% if f.precision_recall %}<h3>Precision and recall per class (challenger)</h3><table><tr><th>class</th><th>held-out images</th><th>precision</th><th>recall</th></tr>
{% for r in f.precision_recall %}<tr><td>{{ r['class'] }}</td><td>{{ r.support }}</td><td>{{ '%.3f'|format(r.precision) if r.precision is not none else '-' }}</td><td>{{ '%.3f'|format(r.recall) if r.recall is not none else '-' }}</td></tr>{% endfor %}</table>{% endif %}
{% else %}<p>No evaluation was recorded.</p>{% endif %}
<h3>Most confident mistakes</h3>
{% if f.mistakes.worst %}<p class="muted">{{ f.mistakes.wrong }} of {{ f.mistakes.examined }} held-out {{ 'texts' if f.modality == 'text' else 'images' }} examined are misclassified; the {{ f.mistakes.worst|length }} with the highest predicted score:</p>
<div class="mistakes">{% for m in f.mistakes.worst %}<div class="mistake{{ ' text' if m.text is defined else '' }}">{% if m.thumbnail %}<img src="{{ m.thumbnail }}" alt="{{ m.image_id }}">{% endif %}{% if m.text is defined %}<blockquote>{{ m.text }}</blockquote>{% else %}<div>{{ m.image_id }}</div>{% endif %}<div>true: <b>{{ m.true }}</b></div><div>predicted: <b class="predicted">{{ m.predicted }}</b> ({{ '%.2f'|format(m.score) }})</div></div>{% endfor %}</div>
{% else %}<p>No mistakes among the {{ f.mistakes.examined }} held-out images examined.</p>{% endif %}

<h2>Provenance</h2>
{% if f.push.pushed %}<table>{% for k, v in f.push.provenance.items() if k != 'evaluation' %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
{% else %}<p>Nothing was pushed by this run.</p>{% endif %}
<p class="muted">Backbone {{ f.backbone }}, {% if f.modality == 'text' %}raw text in{% else %}input {{ f.image_size }} px{% endif %}. Written by graft's RunReport component; the facts are in report.json beside this file.</p>
</body></html>
""")


def html(facts: Dict) -> str:
    classes = facts.get("classes") or []
    ev = facts.get("evaluation") or {}
    t = facts.get("training") or {}
    plots: Dict = {"counts": class_counts_plot((t.get("class_counts") or {}),
                                               facts.get("held_out_counts") or {}),
                   "confusion": []}
    p1 = t.get("phase1") or {}
    if len(p1.get("cv_curve") or []) > 1:
        plots["cv"] = cv_curve_plot(p1["cv_curve"], p1["c"])
    p2 = t.get("phase2") or {}
    if p2.get("history"):
        plots["epochs"] = epochs_plot(p2["history"], p1.get("val_loss"))
    if ev.get("per_class_accuracy"):
        champion = facts.get("champion_per_class")
        plots["per_class"] = per_class_plot(ev["per_class_accuracy"], champion)
    for model, title in ((reading.CANDIDATE, "challenger"), (reading.BASELINE, "champion")):
        names = classes if model == reading.CANDIDATE else facts.get("champion_classes")
        entries = (ev.get("confusion") or {}).get(model)
        if entries and names:
            m = reading.confusion_matrix(entries, len(names))
            plots["confusion"].append({
                "model": title,
                "counts": confusion_plot(m, names, False, f"{title}: counts"),
                "normalised": confusion_plot(m, names, True, f"{title}: share of each true class"),
                "pairs": most_confused(m, names)})
    return _TEMPLATE.render(f=facts, plots=plots)
