"""Pictures for the notebooks: heatmaps, attention masks, position tables, parameter shares.

Every function draws one titled figure with labelled axes and returns it
(``matplotlib.figure.Figure``); in a notebook the inline backend shows it.
Inputs may be torch tensors or NumPy arrays.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

# one colour per part of a model, the same in every figure
PART_COLOURS = {"embeddings": "#4c72b0", "attention": "#dd8452", "mlp": "#55a868",
                "norms": "#c44e52", "other": "#8172b3"}


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _ticks(ax, labels, axis: str, max_labels: int = 40) -> None:
    if labels is None:
        return
    labels = list(labels)
    if len(labels) > max_labels:  # too many to read: let matplotlib choose numeric ticks
        return
    positions = range(len(labels))
    if axis == "x":
        ax.set_xticks(positions, labels, rotation=90, fontsize=8)
    else:
        ax.set_yticks(positions, labels, fontsize=8)


# --- notebook 01: transformer architecture ------------------------------------------------------
def heatmap(matrix, *, title: str, xlabel: str, ylabel: str, x_labels=None, y_labels=None,
            cbar_label: str | None = None, cmap: str = "viridis", vmin=None, vmax=None, ax=None):
    """One matrix as a coloured grid (rows = y, columns = x). Returns the figure."""
    m = _array(matrix)
    if m.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D matrix (got shape {m.shape}); pick one layer and head first")
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(2 + 0.3 * m.shape[1], 9), min(1.6 + 0.3 * m.shape[0], 8)),
                               layout="constrained")
    else:
        fig = ax.figure
    image = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _ticks(ax, x_labels, "x")
    _ticks(ax, y_labels, "y")
    if cbar_label:
        fig.colorbar(image, ax=ax, label=cbar_label, shrink=0.8)
    return fig


def masks(named_masks: dict, tokens, title: str = "Who may attend to whom"):
    """Attention masks side by side; a filled cell means the query (row) may attend to the key (column).

    Each mask is (T, T) bool (or anything with a (T, T) last part, e.g. (1, 1, T, T)).
    ``tokens`` labels both axes: one list of strings for all masks, or one list per mask
    (a list of lists in the masks' order, or a dict name -> list).
    """
    n = len(named_masks)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), layout="constrained", squeeze=False)
    per_mask = isinstance(tokens, dict) or (len(tokens) > 0 and isinstance(tokens[0], (list, tuple)))
    for i, (ax, (name, mask)) in enumerate(zip(axes[0], named_masks.items())):
        m = _array(mask).astype(float)
        m = m.reshape(m.shape[-2:])
        labels = (tokens[name] if isinstance(tokens, dict) else tokens[i]) if per_mask else tokens
        heatmap(m, title=name, xlabel="key: token attended to", ylabel="query: token attending",
                x_labels=labels, y_labels=labels, cmap="Blues", vmin=0, vmax=1.25, ax=ax)
        ax.set_xticks(np.arange(-0.5, m.shape[1]), minor=True)
        ax.set_yticks(np.arange(-0.5, m.shape[0]), minor=True)
        ax.grid(which="minor", color="white", linewidth=1)
        ax.tick_params(which="minor", length=0)
    fig.suptitle(title)
    return fig


def position_similarity(table) -> np.ndarray:
    """(P, P) cosine similarity between every two positions (rows) of a (P, d) position table, in NumPy:
    what the bottom row of :func:`positions` draws. (Sentence embeddings: ``embeddings.cosine_similarity_matrix``.)"""
    t = _array(table).astype(np.float64)
    t = t / np.linalg.norm(t, axis=1, keepdims=True).clip(min=1e-12)
    return t @ t.T


def positions(named_tables: dict, title: str = "Position embeddings", dpi: int = 42):
    """Position tables (P, d) side by side: the raw values (top) and how similar positions are (bottom).

    ``dpi`` is low by default: a learned table looks like noise up close, and noise makes large PNGs.
    """
    n = len(named_tables)
    fig, axes = plt.subplots(2, n, figsize=(5 * n, 8), layout="constrained", squeeze=False, dpi=dpi)
    for col, (name, table) in enumerate(named_tables.items()):
        t = _array(table)
        limit = float(np.percentile(np.abs(t), 99))  # colour scale: a few outliers would wash out the rest
        heatmap(t, title=f"{name}: values", xlabel="dimension (index)", ylabel="position (token index)",
                cmap="RdBu_r", vmin=-limit, vmax=limit, cbar_label="value (clipped at 99th percentile)",
                ax=axes[0, col])
        heatmap(position_similarity(t), title=f"{name}: cosine similarity", xlabel="position (token index)",
                ylabel="position (token index)", cmap="RdBu_r", vmin=-1, vmax=1,
                cbar_label="cosine similarity", ax=axes[1, col])
    fig.suptitle(title)
    return fig


def attention_heads(weights, tokens, *, title: str, heads=None, ncols: int = 4, dpi: int = 48):
    """Attention weights of several heads of one layer, one small heatmap each.

    Args:
        weights: (n_head, T, T) (a leading batch dimension of 1 is dropped).
        heads: which heads to draw (default all).
    """
    w = _array(weights)
    if w.ndim == 4 and w.shape[0] == 1:
        w = w[0]
    if w.ndim != 3:
        raise ValueError(f"weights must be (n_head, T, T) for one layer (got shape {w.shape}); "
                         "index the layer first, e.g. out.attentions[layer][0]")
    heads = list(range(w.shape[0])) if heads is None else list(heads)
    ncols = min(ncols, len(heads))
    nrows = math.ceil(len(heads) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.4 * nrows + 0.6), layout="constrained",
                             squeeze=False, dpi=dpi)
    for ax in axes.flat[len(heads):]:
        ax.axis("off")
    for ax, h in zip(axes.flat, heads):
        heatmap(w[h], title=f"head {h}", xlabel="key (attended to)", ylabel="query", x_labels=tokens,
                y_labels=tokens, vmin=0, vmax=1, ax=ax)
        if len(tokens) > 12:
            ax.tick_params(labelsize=6)
    fig.suptitle(title)
    fig.colorbar(axes.flat[0].images[0], ax=axes, label="attention weight (0 to 1)", shrink=0.6)
    return fig


def attention_head(weights, tokens, *, title: str):
    """One head's (T, T) attention weights, rows = queries, with the weight scale."""
    return heatmap(weights, title=title, xlabel="key: token attended to", ylabel="query: token attending",
                   x_labels=tokens, y_labels=tokens, vmin=0, vmax=1, cbar_label="attention weight (0 to 1)")


def param_shares(breakdowns: dict, title: str = "Where the parameters are"):
    """Stacked horizontal bars: each model's parameters split into parts, as % of its total.

    Args:
        breakdowns: model name -> {part: count}; parts such as embeddings, attention, mlp, norms.
    """
    names = list(breakdowns)
    parts = list(dict.fromkeys(p for b in breakdowns.values() for p in b))
    fig, ax = plt.subplots(figsize=(9, 0.8 * len(names) + 1.6), layout="constrained")
    left = np.zeros(len(names))
    for part in parts:
        share = np.array([100 * breakdowns[n].get(part, 0) / sum(breakdowns[n].values()) for n in names])
        ax.barh(names, share, left=left, label=part, color=PART_COLOURS.get(part))
        for y, (x0, s) in enumerate(zip(left, share)):
            if s >= 6:  # label the segments wide enough to hold text
                ax.text(x0 + s / 2, y, f"{s:.0f}%", ha="center", va="center", color="white", fontsize=9)
        left += share
    for y, n in enumerate(names):
        ax.text(101, y, f"{sum(breakdowns[n].values()) / 1e6:,.1f} M", va="center", fontsize=9)
    ax.set_xlim(0, 112)
    ax.set_xlabel("share of the model's parameters (%)")
    ax.set_ylabel("model")
    ax.set_title(title)
    ax.invert_yaxis()
    ax.legend(ncols=len(parts), loc="upper center", bbox_to_anchor=(0.45, -0.25 if len(names) < 3 else -0.15),
              frameon=False)
    return fig


def vocab_tradeoff(curve: dict, points: dict | None = None, *, d_model: int | None = None,
                   title: str = "Bigger vocabularies carry more text per token"):
    """Bytes per token against vocabulary size: a curve of BPEs trained on one text, and named tokenizers.

    Args:
        curve: vocabulary size -> bytes per token, for BPEs trained the same way.
        points: name -> (vocabulary size, bytes per token), drawn as labelled dots.
        d_model: when given, a second panel shows what the token table costs at that width.
    """
    points = points or {}
    ncols = 2 if d_model else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4), layout="constrained", squeeze=False)
    ax = axes[0, 0]
    sizes = sorted(curve)
    ax.plot(sizes, [curve[v] for v in sizes], "o-", color="#4c72b0", label="BPE trained here")
    markers = "sD^vP*Xh"  # named tokenizers often sit close together: tell them apart by marker, in the legend
    for (name, (v, bpt)), marker in zip(points.items(), markers * len(points)):
        ax.plot([v], [bpt], marker, linestyle="none", markersize=8, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("vocabulary size (tokens, log scale)")
    ax.set_ylabel("bytes of text per token")
    ax.set_title("Text per token")
    ax.legend(loc="lower right")
    if d_model:
        all_sizes = sorted(set(sizes) | {v for v, _ in points.values()})
        ax2 = axes[0, 1]
        ax2.plot(all_sizes, [v * d_model / 1e6 for v in all_sizes], "o-", color="#c44e52")
        ax2.set_xscale("log")
        ax2.set_xlabel("vocabulary size (tokens, log scale)")
        ax2.set_ylabel("token table (million parameters)")
        ax2.set_title(f"Cost of the token table at width {d_model}")
    fig.suptitle(title)
    return fig


# --- functions for other notebooks go below (add, do not edit the ones above) -------------------


# --- notebook 02: generation ------------------------------------------------------------------
def top_tokens_bar(labels, probs, title: str = "Next-token probabilities", ax=None):
    """Horizontal bars of next-token probabilities, the most likely token on top. Returns the figure.

    ``labels`` are token strings; they are shown with ``ascii()`` so spaces and newlines are
    visible and no character is missing from the font.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 1.5 + 0.3 * len(labels)), layout="constrained")
    else:
        fig = ax.figure
    probs = [float(p) for p in probs]
    y = range(len(probs))
    ax.barh(y, probs, color="tab:blue")
    ax.set_yticks(list(y), [ascii(s) for s in labels], fontsize=8)
    ax.invert_yaxis()  # best first, at the top
    ax.set_xlabel("probability of being the next token")
    ax.set_ylabel("token (as text)")
    ax.set_title(title)
    return fig


def kv_cache_times(rows, ax=None, title: str = "Greedy decoding time, with and without the KV cache"):
    """Seconds vs number of new tokens, one line with the cache and one without (rows from
    :func:`lmguide.timing.kv_cache_benchmark`). Returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    else:
        fig = ax.figure
    n = [r["new tokens"] for r in rows]
    ax.plot(n, [r["without cache s"] for r in rows], "o-", color="tab:red", label="without cache (recompute all)")
    ax.plot(n, [r["with cache s"] for r in rows], "o-", color="tab:green", label="with KV cache")
    ax.set_xlabel("new tokens generated")
    ax.set_ylabel("time (s, median of repeats)")
    ax.set_title(title)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def temperature_panels(probs_by_temperature: dict, labels, *, title: str):
    """One panel per temperature: the same top tokens' probabilities, plus "all other tokens".

    ``probs_by_temperature`` maps a temperature to the probabilities of the tokens in
    ``labels`` (the same tokens, in the same order, for every temperature); the grey bar is
    whatever probability the rest of the vocabulary holds (1 minus their sum). All panels
    share the probability axis, so sharpening (T < 1) and flattening (T > 1) are visible.
    Returns the figure.
    """
    labels = [ascii(s) for s in labels] + ["(all other tokens)"]
    n = len(probs_by_temperature)
    if n == 0:
        raise ValueError("probs_by_temperature is empty; pass at least one temperature -> probabilities")
    fig, axes = plt.subplots(1, n, figsize=(2.9 * n + 1.2, 1.4 + 0.28 * len(labels)),
                             sharey=True, layout="constrained", squeeze=False)
    for ax, (t, probs) in zip(axes[0], probs_by_temperature.items()):
        p = _array(probs).astype(float).ravel()
        if len(p) != len(labels) - 1:
            raise ValueError(f"temperature {t}: {len(p)} probabilities for {len(labels) - 1} labels")
        values = list(p) + [max(0.0, 1.0 - p.sum())]
        colours = ["tab:blue"] * len(p) + ["0.6"]
        ax.barh(range(len(values)), values, color=colours)
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
        ax.set_title(f"T = {t:g}")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(labels)), labels, fontsize=8)
    axes[0][0].invert_yaxis()  # most likely (at T = 1) on top
    axes[0][0].set_ylabel("next token (as text)")
    fig.suptitle(title)
    return fig


# --- notebook 03: embeddings and search ------------------------------------------------------------
def similarity_heatmap(similarity, labels, groups=None, *, title: str = "Cosine similarity of sentence embeddings"):
    """A square similarity matrix with its texts as tick labels; frames around topic groups.

    The diagonal (each text with itself, always 1) is greyed out so that the colour scale
    spans the off-diagonal values, where the structure is. ``groups`` (one topic name per
    text, texts of a topic next to each other) draws a frame around each topic's block.
    Returns the figure.
    """
    m = _array(similarity).astype(float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"similarity_heatmap needs an (N, N) matrix and N labels (got {m.shape} and "
                         f"{len(labels)} labels); pass embeddings.cosine_similarity_matrix(v, v) and the texts")
    n = m.shape[0]
    off = m.copy()
    np.fill_diagonal(off, np.nan)  # NaN cells are drawn in the "bad" colour: grey
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("lightgrey")
    fig, ax = plt.subplots(figsize=(2.5 + 0.45 * n, 1.5 + 0.45 * n), layout="constrained")
    lo, hi = float(np.nanmin(off)), float(np.nanmax(off))
    image = ax.imshow(off, cmap=cmap, vmin=min(0.0, lo), vmax=hi, interpolation="nearest")
    ax.set_xticks(range(n), [str(s) for s in labels], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(s) for s in labels], fontsize=8)
    ax.set_xlabel("sentence")
    ax.set_ylabel("sentence")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            value = f"{m[i, j]:.2f}".replace("-0.00", "0.00")
            bright = i == j or m[i, j] > min(0.0, lo) + 0.6 * (hi - min(0.0, lo))
            ax.text(j, i, value, ha="center", va="center", fontsize=6, color="black" if bright else "white")
    if groups is not None:
        groups = list(groups)
        start = 0
        for i in range(1, n + 1):
            if i == n or groups[i] != groups[start]:
                ax.add_patch(plt.Rectangle((start - 0.5, start - 0.5), i - start, i - start,
                                           fill=False, edgecolor="red", linewidth=1.5))
                start = i
    fig.colorbar(image, ax=ax, label="cosine similarity (1 = same direction)", shrink=0.8)
    return fig


def recall_curves(curves: dict, *, title: str = "Recall@k: is the answer's passage among the top k?", ax=None):
    """Recall@k against k, one line per search method (``{name: {k: recall}}``). Returns the figure."""
    if not curves:
        raise ValueError("recall_curves needs at least one method: {name: {k: recall}}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    else:
        fig = ax.figure
    for name, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [100 * curve[k] for k in ks], "o-", label=name)
    ax.set_xscale("log")
    ks = sorted({k for curve in curves.values() for k in curve})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (passages returned)")
    ax.set_ylabel("questions whose answer passage is in the top k (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


# --- notebook 03: extractive question answering ---------------------------------------------------
def _legal_span_scores(start, end, context, max_answer_len):
    """(T, T) start + end logit of every span s..e inside the context and at most ``max_answer_len`` tokens
    long; NaN where a span is not allowed (``qa.best_span``'s rule, drawn as a matrix)."""
    T = len(start)
    pos = np.arange(T)
    length = pos[None, :] - pos[:, None] + 1                                   # (T, T): tokens in span s..e
    legal = (length >= 1) & (length <= max_answer_len) & context[:, None] & context[None, :]
    scores = np.where(legal, start[:, None] + end[None, :], np.nan)           # (T, T)
    return scores


def _span_inputs(caller, start_logits, end_logits, context_mask, tokens, max_answer_len):
    """Checked float/bool arrays, the legal span scores and the best legal (start, end), for the span plots."""
    start, end = _array(start_logits).astype(float), _array(end_logits).astype(float)
    context = _array(context_mask).astype(bool)
    if not (start.ndim == 1 and start.shape == end.shape == context.shape and len(tokens) == len(start)):
        raise ValueError(f"{caller} needs 1-D start, end and context_mask of one length and a token per "
                         f"position (got {start.shape}, {end.shape}, {context.shape}, {len(tokens)} tokens)")
    scores = _legal_span_scores(start, end, context, max_answer_len)
    return start, end, context, scores, np.unravel_index(np.nanargmax(scores), scores.shape)


def span_logits(start_logits, end_logits, context_mask, tokens, *, max_answer_len: int = 30,
                title: str = "Start and end logits over the tokens", window=None):
    """Start and end logits as bars over the tokens, with the two separate argmaxes and the best
    legal (start, end) span marked: the classic snippet's bug made visible. Returns the figure.

    ``window`` (first, last) limits the x axis to those token positions (the whole input when None).
    """
    start, end, context, scores, (s, e) = _span_inputs("span_logits", start_logits, end_logits, context_mask, tokens,
                                                        max_answer_len)
    s_alone, e_alone = int(start.argmax()), int(end.argmax())
    lo, hi = window if window is not None else (0, len(start) - 1)
    fig, axes = plt.subplots(2, 1, figsize=(min(3 + 0.22 * (hi - lo + 1), 14), 5.5), sharex=True,
                             layout="constrained")
    x = np.arange(lo, hi + 1)
    for ax, values, name, alone, colour in ((axes[0], start, "start", s_alone, "tab:blue"),
                                            (axes[1], end, "end", e_alone, "tab:orange")):
        bar_colours = [colour if context[i] else "lightgrey" for i in x]
        ax.bar(x, values[lo:hi + 1], color=bar_colours, width=0.8)
        ax.axvspan(s - 0.5, e + 0.5, color="tab:green", alpha=0.2,
                   label=f"best legal span: tokens {s}-{e}, score {start[s] + end[e]:.1f}")
        if lo <= alone <= hi:
            ax.annotate(f"argmax {name}: {alone}", (alone, values[alone]), xytext=(0, 8),
                        textcoords="offset points", ha="center", color="tab:red", fontsize=8,
                        arrowprops=dict(arrowstyle="-", color="tab:red"))
            ax.plot([alone], [values[alone]], "v", color="tab:red", markersize=8)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel(f"{name} logit")
        ax.legend(loc="lower left", fontsize=8)
    axes[0].set_title(title)
    labels = [str(tokens[i]) for i in x]
    axes[1].set_xticks(x, labels, rotation=90, fontsize=7)
    axes[1].set_xlabel("token (grey: question and special tokens, never part of an answer)")
    return fig


def span_scores(start_logits, end_logits, context_mask, tokens, *, max_answer_len: int = 30,
                title: str = "Span scores start[s] + end[e] of the legal spans", window=None):
    """Heatmap of start[s] + end[e] over the legal spans (both in the context, s <= e, at most
    ``max_answer_len`` tokens; others grey), the best one framed in green and the pair of
    separate argmaxes marked with a red x when it is in view. Returns the figure."""
    start, end, context, scores, (s, e) = _span_inputs("span_scores", start_logits, end_logits, context_mask, tokens,
                                                        max_answer_len)
    lo, hi = window if window is not None else (0, len(start) - 1)
    view = scores[lo:hi + 1, lo:hi + 1]
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")  # NaN (illegal span) cells in grey
    n = hi - lo + 1
    fig, ax = plt.subplots(figsize=(min(3 + 0.25 * n, 11), min(2.5 + 0.25 * n, 10)), layout="constrained")
    image = ax.imshow(view, cmap=cmap, interpolation="nearest", aspect="auto")
    ax.add_patch(plt.Rectangle((e - lo - 0.5, s - lo - 0.5), 1, 1, fill=False, edgecolor="tab:green", linewidth=2.5))
    s_alone, e_alone = int(start.argmax()), int(end.argmax())
    if lo <= s_alone <= hi and lo <= e_alone <= hi:
        ax.plot([e_alone - lo], [s_alone - lo], "x", color="tab:red", markersize=10, markeredgewidth=2.5,
                label=f"separate argmaxes: start {s_alone}, end {e_alone}")
    ax.plot([], [], "s", markerfacecolor="none", markeredgecolor="tab:green", markeredgewidth=2,
            label=f"best legal span: start {s}, end {e}")
    labels = [str(t) for t in tokens[lo:hi + 1]]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("end token e")
    ax.set_ylabel("start token s")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    fig.colorbar(image, ax=ax, label="start[s] + end[e] (logits)", shrink=0.8)
    return fig
