"""The comparison table: every zoo model measured the same way, its Pareto front, a recommendation,
and the results file ``lmguide bench`` writes and notebook 07 reads.
"""
from __future__ import annotations

from lmguide._util import MIB, read_json, write_json_atomic
from lmguide.hardware import decode_bound, hardware_class
from lmguide.measure import rows as rows_mod


def table(names=None, repeats: int = 3, threads: int = 2, quick: bool = False, progress: bool = True,
          bandwidth: dict | None = None, **options):
    """The comparison table: one row per model (default: every zoo entry that can run here), each measured
    in its own process.

    With a ``bandwidth`` (from ``hardware.memory_bandwidth``) generators also get their decode bound
    (the bytes of weights one token reads) and the share of it they reach.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from lmguide import zoo

    names = list(names or runnable())
    unknown = [n for n in names if n not in zoo.ENTRIES]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(zoo.names())}")
    rows = []
    for name in tqdm(names, desc="measuring models", disable=not progress):
        rows.append(rows_mod.measure_isolated(name, repeats=repeats, threads=threads, quick=quick, **options))
    frame = pd.DataFrame(rows).set_index("model")
    frame["hardware class"] = [hardware_class(m) for m in frame["model RAM MiB"]]
    if bandwidth is not None and "tokens/s" in frame:
        read = frame["weights read per token MiB"].fillna(frame["weights in RAM MiB"])
        bound = [decode_bound(m * MIB, bandwidth["GB/s"]) for m in read]
        frame["bound tokens/s"] = pd.Series(bound, index=frame.index).where(frame["kind"] == "causal-lm")
        frame["% of bound"] = 100 * frame["tokens/s"] / frame["bound tokens/s"]
    return frame


def runnable() -> list[str]:
    """The zoo models that can be measured here: all but a ladder model whose files or engine are missing."""
    from lmguide import engines, makers, zoo

    names = []
    for name in zoo.names():
        if engines.default_kind(name) == "llama.cpp":
            from lmguide.engines import llama_cpp

            if makers.left_out(zoo.entry(name)) or not llama_cpp.available():
                continue
        names.append(name)
    return names


def card_rows(names=None, quick: bool = False):
    """Rows of the comparison table for the size ladder, from the model cards (``python -m
    lmguide.recipes.ladder``), each naming the machine it was measured on; default: every model with a card.
    ``quick``: quality on the part of the task a quick table scores (also stored in the cards)."""
    import pandas as pd

    from lmguide import zoo
    from lmguide.engines.llama_cpp import file_precision
    from lmguide.measure import quality

    rows = []
    for name in names or zoo.names():
        info = quality.card(name)
        if info is None or "decode" not in info:
            continue
        e, d, m = zoo.entry(name), info["decode"], info["machine"]
        score = quality.card_score(name, quick)
        rows.append({"model": name, "kind": e.kind, "engine": d["engine"], "parent": e.parent or "",
                     "parameters M": e.parameters / 1e6, "size on disk MiB": d.get("file MiB"),
                     "weights in RAM MiB": d.get("file MiB"), "weights read per token MiB": d["weights read per token MiB"],
                     "precision": file_precision(next(iter(e.files))),
                     "load s": d["load s"], "first token ms": d["first token ms"], "tokens/s": d["tokens/s"],
                     "step ms": d["step ms"], "peak RSS MiB": d["peak RSS MiB"], "model RAM MiB": d.get("model RAM MiB"),
                     "quality task": score["task"] if score else None, "quality": score["value"] if score else None,
                     "bound tokens/s": d["bound tokens/s"], "% of bound": d["% of bound"],
                     "measured on": f"{m['cpu']} ({info['measured']}, model card)"})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.set_index("model")
    frame["hardware class"] = [hardware_class(r) for r in frame["model RAM MiB"].fillna(frame["peak RSS MiB"])]
    return frame


def pareto_front(points: dict, lower_quality_is_better: bool = False) -> list[str]:
    """Names of the points no other point beats on both axes; ``points`` maps name -> (quality, speed).

    Speed is always higher-is-better; quality is too unless ``lower_quality_is_better`` (bits per
    byte). A point is dominated when another is at least as good on both and better on one.
    """
    sign = -1.0 if lower_quality_is_better else 1.0
    clean = {n: (sign * q, s) for n, (q, s) in points.items() if q == q and s == s}  # drop NaN
    front = []
    for name, (q, s) in clean.items():
        dominated = any(q2 >= q and s2 >= s and (q2 > q or s2 > s) for other, (q2, s2) in clean.items() if other != name)
        if not dominated:
            front.append(name)
    return front


NEEDS = {"write text": ("causal-lm",), "answer from documents": ("question-answering", "encoder"),
         "search documents": ("encoder",)}


def recommend(frame, need: str, max_ram_mib: float, max_first_token_ms: float, min_tokens_per_s: float = 0.0):
    """Which measured models meet the needs, best quality first, each with the reason it fits or not.

    ``frame`` is the comparison table; ``need`` one of :data:`NEEDS`. Returns a DataFrame with
    columns fits (bool), quality and why (one sentence naming the limit a model breaks).
    """
    import pandas as pd

    if need not in NEEDS:
        raise ValueError(f"need must be one of {', '.join(NEEDS)} (got {need!r})")
    rows = []
    for name, r in frame[frame["kind"].isin(NEEDS[need])].iterrows():
        reasons = []
        if r["model RAM MiB"] > max_ram_mib:
            reasons.append(f"needs {r['model RAM MiB']:,.0f} MiB of RAM (> {max_ram_mib:,.0f})")
        if r["first token ms"] > max_first_token_ms:
            reasons.append(f"first output after {r['first token ms']:,.0f} ms (> {max_first_token_ms:,.0f})")
        speed = r.get("tokens/s", float("nan"))
        if r["kind"] == "causal-lm" and speed == speed and speed < min_tokens_per_s:
            reasons.append(f"{speed:,.1f} tokens/s (< {min_tokens_per_s:,.1f})")
        why = ("fits: " + f"{r['model RAM MiB']:,.0f} MiB, first output {r['first token ms']:,.0f} ms, "
               f"{r['quality task']} {r['quality']:.3g}") if not reasons else "does not fit: " + "; ".join(reasons)
        rows.append({"model": name, "kind": r["kind"], "fits": not reasons, "quality task": r["quality task"],
                     "quality": r["quality"], "why": why})
    out = pd.DataFrame(rows, columns=["model", "kind", "fits", "quality task", "quality", "why"]).set_index("model")
    lower_better = out["quality task"].str.contains("bits/byte")
    out["rank key"] = out["quality"].where(~lower_better, -out["quality"])
    return out.sort_values(["fits", "kind", "rank key"], ascending=[False, True, False]).drop(columns="rank key")


# --- results on disk: what `lmguide bench` writes and notebook 07 reads ------------------------
def results_file():
    from lmguide import zoo

    return zoo.cache_dir() / "bench" / "results.json"


def save_results(results: dict, file=None) -> None:
    """Store what ``lmguide bench`` measured (tables as records), atomically."""
    write_json_atomic(file or results_file(), results, indent=1, default=_json_default)


def load_results(file=None) -> dict | None:
    """What ``lmguide bench`` stored (machine, bandwidth, table, ...), or None if it has not run."""
    return read_json(file or results_file())


def _json_default(value):
    if hasattr(value, "to_dict"):
        return value.reset_index().to_dict(orient="records")
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} in the results file")


def frame_from_results(results: dict, part: str = "table"):
    """A stored table back as a DataFrame (indexed by model for the comparison table)."""
    import pandas as pd

    frame = pd.DataFrame(results[part])
    return frame.set_index("model") if "model" in frame else frame
