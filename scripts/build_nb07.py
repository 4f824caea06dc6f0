"""Build notebooks/07_choosing_llm_vs_slm.ipynb from cells written here (then execute with nbconvert)."""
import nbformat as nbf

cells = []
md = lambda s: cells.append(nbf.v4.new_markdown_cell(s.strip()))
code = lambda s: cells.append(nbf.v4.new_code_cell(s.strip()))

md(r"""
# 07 · Choosing between an LLM and an SLM, by measurement

**Why this matters.** "Use a small model when you can, a large one when you must" is advice everyone
gives and nobody can act on without numbers: how much smaller, how much faster, how much worse, on
*which* machine? The article this course grew from promised a comparison table and left it empty.
Here we fill it in on your machine, for every model in the zoo, and then find out *why* the speeds
are what they are: a physical limit (memory bandwidth) that no library can beat, and the overheads
that keep small models far from it.

**Learning goals**
- Measure parameters, size, RAM, load time, first-token latency, speed and task quality the same way for every model.
- Compute the decode bound (memory bandwidth / bytes of weights) and say how close each model and engine gets.
- See why more threads stop helping once decoding is bandwidth-bound, and where small models are overhead-bound instead.
- Route easy questions to an SLM and hard ones to an LLM, and measure whether the router beats both "always" baselines.
- Turn latency, memory and quality needs into a model choice, with the reason.

**Time:** about 45 minutes to read and try; the notebook runs in under 3 minutes (it reads the slow
figures from the cache `lmguide bench` writes; see below). **Prerequisites:** 02 (generation,
timing), 03 (embeddings, extractive QA); 05 and 06 make the int8 and distilled variants that appear in
the table once they are in the zoo.
""")

code(r"""
%config InlineBackend.figure_formats = ["png"]
import gc
import math
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

import lmguide as lg
from lmguide import bench, export, router

lg.setup()
""")

md(r"""
## The article's comparison table, as written

The article announced "a side-by-side comparison" and printed this:

| Aspect | LLM | SLM |
|---|---|---|
| Size |  |  |
| Speed |  |  |
| Memory |  |  |
| Quality |  |  |
| Hardware |  |  |

It never said *which* LLM and SLM, on *what* machine, measured *how*. A fixed version needs three
things the empty table lacks: named models, a measurement rule that is the same for all of them, and
the machine it was measured on.

**The rule used here** (`lmguide.bench`, the same code as the `lmguide bench` command):
- every model is loaded in its **own Python process**, so its peak RAM is its own (`peak RSS`; `model
  RAM` is what loading and running it added to that process);
- **load time**: one `lg.load(name)` after the model's files and code are already on hand;
- **first token** (generators): one greedy run of one new token after a 19-token prompt; for encoders
  the latency of one input;
- **tokens/s** (generators): the extra tokens over the extra time of a 32-token run vs a 1-token run
  (so the prompt does not count), runs interleaved, one warm-up, median of repeats; **inputs/s**
  (encoders): sentences or questions per second in batches of 32;
- **quality** on the task each model suits: bits per byte on the **whole** held-out Austen test split for
  generators (`lmguide.eval.split_bits_per_byte`), SQuAD F1 on the QA dev set for the reader, recall@5
  for retrieval over all 415 QA passages for the sentence encoder.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
results = bench.load_results()
stored = set() if results is None else {row["model"] for row in results["table"]}
if results is not None and not results.get("quick"):
    table = bench.frame_from_results(results)
    print(f"Read from the cache: `lmguide bench` measured these at {results['measured at']} on this machine.")
else:
    print("No stored full results: measuring a reduced version live (quality on part of each task, 1 repeat).")
    table = bench.table(quick=True, repeats=1, progress=False)
live = [n for n in lg.zoo.names() if n not in table.index]
if live:  # a model added to the zoo after the stored run (e.g. a new variant): measured now
    print("measured live now (not in the stored run):", ", ".join(live))
    table = pd.concat([table, bench.table(live, quick=True, repeats=1, progress=False)])
print("To re-measure everything:  lmguide bench --extras   (stores its results where this notebook reads them)")
machine = results["machine"] if results else bench.machine()
print(f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, transformers {machine['transformers']}")
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
columns = ["kind", "parent", "parameters M", "size on disk MiB", "weights in RAM MiB", "peak RSS MiB", "model RAM MiB",
           "load s", "first token ms", "tokens/s", "inputs/s", "quality task", "quality", "hardware class"]
comparison = table.reindex(columns=columns)
comparison.round(2)
""")

code(r"""
assert set(lg.zoo.names()) <= set(table.index), "every zoo model has a measured row"
fp32 = table[(table["parent"].fillna("") == "")]
# an fp32 model holds 4 bytes per parameter in RAM (the check that the byte counting is right)
assert ((fp32["weights in RAM MiB"] * 2**20 / (fp32["parameters M"] * 1e6) - 4).abs() < 0.2).all()
assert (table["peak RSS MiB"] > table["model RAM MiB"]).all() and (table["model RAM MiB"] > 0).all()
print("hardware class rule:", bench.hardware_rule())
""")

md(r"""
**Reading the table.** `parameters`, `size on disk` and `weights in RAM` follow from the files. The
RAM column is what actually decides the hardware class, and it is larger than the weights: the
tokenizer, the model code, and the buffers of the first forward pass all count. Speeds and load times
vary from run to run (other programs share the CPU); the stored run reports medians of
`repeats` runs, and the spread column of `lmguide bench --json` says how much they disagreed.

## Quality against speed and size: the Pareto front

Only models scored on the same task can share an axis, so the plots show the generators (bits per
byte on the same Austen text: lower is better). A model is on the **Pareto front** when no other is
both better and faster (or smaller); everything off the front is beaten on both axes by something in
the zoo. Note what favours SmolLM2 here: it was trained on a vast web corpus that very likely includes
Austen's novels, while the AustenGPT models saw only the training chapters.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
gen = table[table["kind"] == "causal-lm"]
fast_front = bench.pareto_front({n: (r["quality"], r["tokens/s"]) for n, r in gen.iterrows()}, lower_quality_is_better=True)
small_front = bench.pareto_front({n: (r["quality"], -r["size on disk MiB"]) for n, r in gen.iterrows()},
                                 lower_quality_is_better=True)
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, xcol, front, xlabel in ((axes[0], "tokens/s", fast_front, "decode speed (tokens/s, log scale)"),
                                (axes[1], "size on disk MiB", small_front, "size on disk (MiB, log scale)")):
    on = gen.loc[front].sort_values(xcol)
    ax.plot(on[xcol], on["quality"], "--", color="tab:red", label="Pareto front")
    ax.scatter(gen[xcol], gen["quality"], color=["tab:red" if n in front else "tab:gray" for n in gen.index])
    for n, r in gen.iterrows():
        ax.annotate(n, (r[xcol], r["quality"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("bits per byte on the Austen test split (lower is better)")
    ax.legend()
axes[0].set_title("Quality vs speed (generators)")
axes[1].set_title("Quality vs size (generators)")
plt.tight_layout()
plt.show()
print("fastest-for-its-quality front:", fast_front, "| smallest-for-its-quality front:", small_front)
""")

md(r"""
## The physical limit: memory bandwidth

To produce one token, a decoder multiplies the current vector by **every weight matrix once**. On a
CPU those weights do not fit in the caches (SmolLM2 is 538 MB in fp32), so they stream from RAM for
every token. However clever the code, one sequence cannot decode faster than

$$\text{tokens/s} \le \frac{\text{memory bandwidth (bytes/s)}}{\text{bytes of weights}}.$$

Scratch first: measure the bandwidth with a copy far larger than any cache (a copy of N bytes reads N
and writes N). Then the library function, and a check that they agree.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
src = torch.ones(256 * 2**20 // 4)            # 256 MiB of float32
dst = torch.empty_like(src)
dst.copy_(src)                                # warm-up: the pages get mapped
seconds = []
for _ in range(5):
    t0 = time.perf_counter()
    dst.copy_(src)
    seconds.append(time.perf_counter() - t0)
scratch_gbs = 2 * src.numel() * 4 / sorted(seconds)[2] / 1e9   # bytes read + written / median seconds
del src, dst
library = bench.memory_bandwidth(mib=256, repeats=5)
stored_bw = results["bandwidth"] if results else library
print(f"scratch copy: {scratch_gbs:.1f} GB/s | bench.memory_bandwidth: {library['GB/s']:.1f} GB/s "
      f"(spread {library['spread']:.0%}) | stored run: {stored_bw['GB/s']:.1f} GB/s")
assert 0.33 < scratch_gbs / library["GB/s"] < 3, "two measurements of one machine's bandwidth agree within noise"
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
bw = stored_bw["GB/s"]   # the bandwidth measured in the same run as the stored speeds
bound = gen[["weights in RAM MiB", "tokens/s"]].copy()
bound["bytes per token MB"] = gen["weights in RAM MiB"] * 2**20 / 1e6
bound["bound fp32 tokens/s"] = [bench.decode_bound(b * 1e6, bw) for b in bound["bytes per token MB"]]
bound["bound bf16 tokens/s"] = 2 * bound["bound fp32 tokens/s"]
bound["bound int8 tokens/s"] = 4 * bound["bound fp32 tokens/s"]
bound["measured % of bound"] = 100 * gen["tokens/s"] / bound["bound fp32 tokens/s"]
# per-token overhead: the time a step takes beyond reading the weights
bound["overhead ms"] = 1000 / gen["tokens/s"] - 1000 * bound["bytes per token MB"] * 1e6 / (bw * 1e9)
bound.round(2)
""")

md(r"""
The bf16 and int8 bounds are the fp32 bound times 2 and 4: the same weights in fewer bytes. A
model only gets near its bound when reading the weights is most of a step's time. The rest is
**per-token overhead**: Python running the loop, transformers' checks, and launching a few hundred small
kernels per step; it barely depends on the model's size. So for a tiny model, the bound is far out of
reach, and a step costs about the same whatever the weights. The simplest model of a step is

$$t_\text{step} \approx t_\text{overhead} + \frac{\text{bytes of weights}}{\text{bandwidth}},$$

and a model stops being bandwidth-bound where the two terms are equal: at **overhead × bandwidth**
bytes of weights.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
overhead_s = float(bound.loc[bound["bytes per token MB"].idxmin(), "overhead ms"]) / 1000  # the smallest model's
crossover_mb = overhead_s * bw * 1e9 / 1e6
sizes = torch.logspace(0, 3.5, 60)  # 1 MB ... 3 GB of weights
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(sizes, bw * 1e9 / (sizes * 1e6), label="bandwidth bound (bytes / bandwidth only)")
ax.plot(sizes, 1 / (overhead_s + sizes * 1e6 / (bw * 1e9)), label=f"bound + {1000 * overhead_s:.1f} ms overhead per token")
ax.scatter(bound["bytes per token MB"], gen["tokens/s"], color="black", zorder=3, label="measured (torch fp32)")
for n, r in bound.iterrows():
    ax.annotate(n, (r["bytes per token MB"], gen.loc[n, "tokens/s"]), textcoords="offset points", xytext=(4, -10), fontsize=8)
ax.axvline(crossover_mb, color="gray", ls=":", label=f"overhead = weight reading at {crossover_mb:,.0f} MB")
ax.set_xscale("log"); ax.set_yscale("log")
ax.set_xlabel("bytes of weights read per token (MB, log)"); ax.set_ylabel("tokens/s (log)")
ax.set_title(f"Decode speed vs the bandwidth bound ({bw:.1f} GB/s measured)")
ax.legend(fontsize=8)
plt.show()
print(f"per-token overhead (smallest model): {1000 * overhead_s:.1f} ms; below ~{crossover_mb:,.0f} MB of weights a model is "
      f"overhead-bound on this machine, above it bandwidth-bound")
""")

md(r"""
### More threads do not always help

A matrix-vector product split over more cores finishes sooner only while the cores, not the memory,
are the bottleneck. Once the memory bus is saturated, extra threads wait for the same bytes; for a tiny
model, the per-token overhead is single-threaded Python, so threads do not help either. Learners often
take the flat curve for a bug in their setup. The stored run measured decode speed at 1, 2 and all
cores; without it, this cell measures a short version now.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
if results and "thread scaling" in results:
    scaling = pd.DataFrame(results["thread scaling"]); print("thread scaling: stored run")
else:
    rows = []
    for name in ("austen-gpt-small", "smollm2-135m"):
        model, tokenizer = lg.load(name)
        ids = tokenizer(bench.PROMPT, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            rows += [{"model": name, **r} for r in bench.thread_scaling(model, ids, new_tokens=8, repeats=1)]
        del model; gc.collect()
    scaling = pd.DataFrame(rows); print("thread scaling: measured live now (short runs)")
fig, ax = plt.subplots(figsize=(6, 3.8))
for name, part in scaling.groupby("model"):
    base = part.set_index("threads")["tokens/s"]
    ax.plot(base.index, base / base.iloc[0], "o-", label=name)
ax.plot(sorted(scaling["threads"].unique()), sorted(scaling["threads"].unique()), ":", color="gray", label="perfect scaling")
ax.set_xlabel("torch threads"); ax.set_ylabel("decode speed relative to 1 thread")
ax.set_title(f"Thread scaling of decoding ({machine['cores']} cores)")
ax.legend(); plt.show()
scaling.round(2)
""")

md(r"""
## Getting SmolLM2 closer to its bound

What moves SmolLM2's decode closest to the bound? Candidates: **bf16** weights (half the bytes; but the
CPU must convert to compute), torch's dynamic **int8** `Linear` (a quarter of the bytes in the linear
layers; the embedding stays fp32), **onnxruntime** (another engine, its own kernels, no Python per layer),
and **batching** (one read of the weights serves 8 sequences: it does not beat the per-sequence bound,
it shares it). `torch.compile` is left out: its first call builds C++ kernels with the system compiler,
which takes minutes, and a notebook cannot afford that; add `torch.compile(model)` as an engine to try
it. Each engine's bound uses the bytes *it* reads per token.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
if results and "decode variants" in results:
    variants = pd.DataFrame(results["decode variants"]); print("decode variants: stored run (`lmguide bench --extras`)")
else:
    variants = pd.DataFrame(export.decode_variants("smollm2-135m", repeats=1, new_tokens=6, batch=4, progress=False,
                                                   which=("torch fp32", "torch bf16", "torch int8")))
    print("decode variants: measured live now (short runs, no onnxruntime: its SmolLM2 export takes minutes; "
          "`lmguide bench --extras` adds it)")
    gc.collect()
variants = variants.set_index("engine")
fp32_speed = variants.loc["torch fp32", "tokens/s"]
variants["speed vs torch fp32"] = variants["tokens/s"] / fp32_speed
best = variants["% of bound"].idxmax()
print(f"closest to its own bound: {best} at {variants.loc[best, '% of bound']:.0f}% "
      f"(torch fp32: {variants.loc['torch fp32', '% of bound']:.0f}%)")
fastest = variants.drop(index=[i for i in variants.index if "batch" in i])["tokens/s"].idxmax()
print(f"fastest single sequence: {fastest}, {variants.loc[fastest, 'speed vs torch fp32']:.2f}x torch fp32")
variants.round(2)
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.barh(variants.index, variants["% of bound"], color=["tab:orange" if i == best else "tab:blue" for i in variants.index])
ax.set_xlabel("measured steps/s as % of the engine's own bandwidth bound")
ax.set_title("SmolLM2-135M decode: how close each engine gets to its bound")
ax.invert_yaxis(); plt.tight_layout(); plt.show()
""")

md(r"""
## Another engine, side by side: ONNX + onnxruntime

`lmguide.export` exports **one decode step with its key/value cache** (`torch.onnx.export`, dynamo
exporter): inputs are the new token(s), the attention mask, the positions and every layer's past keys and
values; outputs are the logits and the updated keys and values. The prompt goes through the same graph
with a dummy past slot that the mask hides. So onnxruntime does the same work per token as torch. Then
`onnxruntime.quantization.quantize_dynamic` makes an int8 copy. First, on the smallest generator
(exported once into the user cache; about a minute the first time):
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
small, small_tok = lg.load("austen-gpt-small")
files = export.onnx_files("austen-gpt-small", small)
print("export:", "done now" if files["export s"] else "read from the cache", f"({files['export s']:.0f} s)")
t0 = time.perf_counter(); ort_fp32 = export.OrtGenerator(files["fp32"], small.config); ort_fp32_load = time.perf_counter() - t0
t0 = time.perf_counter(); ort_int8 = export.OrtGenerator(files["int8"], small.config); ort_int8_load = time.perf_counter() - t0
ids = small_tok(bench.PROMPT, return_tensors="pt")["input_ids"]
diff32, diff8 = export.check_logits(small, ort_fp32, ids), export.check_logits(small, ort_int8, ids)
print(f"largest logit difference vs torch: fp32 {diff32:.2e}, int8 {diff8:.2e} (logits spread {small(ids).logits.std():.2f})")
""")

code(r"""
assert diff32 < 1e-3, "the fp32 graph computes what torch computes"
from lmguide.sampling import greedy_generate
assert torch.equal(ort_fp32.greedy(ids, 16), greedy_generate(small, ids, 16)), "same tokens, with the KV cache"
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
calls = {"torch fp32": lambda n: greedy_generate(small, ids, n), "ort fp32": lambda n: ort_fp32.greedy(ids, n),
         "ort int8": lambda n: ort_int8.greedy(ids, n)}
with torch.inference_mode():
    runs = bench._interleaved({f"{k} {n}": (lambda f=f, n=n: f(n)) for k, f in calls.items() for n in (1, 32)}, 5, 1, time.perf_counter)
small_row = table.loc["austen-gpt-small"]
engines_small = pd.DataFrame([{
    "engine": k, "file MiB": small_row["size on disk MiB"] if k == "torch fp32" else export.onnx_size_mib(files[k.split()[1]]),
    "load s": small_row["load s"] if k == "torch fp32" else (ort_fp32_load if k == "ort fp32" else ort_int8_load),
    "first token ms": 1000 * runs[f"{k} 1"].median,
    "tokens/s": 31 / (runs[f"{k} 32"].median - runs[f"{k} 1"].median)} for k in calls]).set_index("engine")
engines_small["vs torch fp32"] = engines_small["tokens/s"] / engines_small.loc["torch fp32", "tokens/s"]
print("austen-gpt-small, live, runs interleaved (torch's load time is from the table, a fresh process)")
engines_small.round(2)
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
fastest_small = engines_small["tokens/s"].idxmax()
print(f"austen-gpt-small: fastest here is {fastest_small}, "
      f"{engines_small.loc[fastest_small, 'vs torch fp32']:.2f}x torch fp32; "
      f"ort int8 vs ort fp32: {engines_small.loc['ort int8', 'tokens/s'] / engines_small.loc['ort fp32', 'tokens/s']:.2f}x")
ort_rows = variants[variants.index.str.startswith("ort")]
if len(ort_rows):
    r = variants.loc[variants["tokens/s"].idxmax()]
    print("smollm2-135m (stored run):", ", ".join(f"{i} {v:.1f} tokens/s" for i, v in variants["tokens/s"].items()))
else:
    print("smollm2-135m in onnxruntime: not in this run; `lmguide bench --extras` exports it (several minutes) and adds it")
del small, ort_fp32, ort_int8; gc.collect()
""")

md(r"""
int8 is not automatically faster: it needs the CPU's int8 dot-product instructions, and for a model this
small the per-token overhead dominates anyway. That is why the brief says *measure, don't assume*.

## The router: the article's customer-service scenario

The article's example: a support desk where "an SLM handles routine questions and an LLM the complex
ones". We wrote a support manual for a made-up thermostat (12 passages) and 72 questions with gold
answers (`data/router/`, see its data card): 48 **easy** ones whose answer is a phrase of one passage, and
24 **hard** ones that need arithmetic, two passages, or advice. The SLM side is retrieval (`minilm-l6`)
plus extractive QA (`minilm-qa`), which **abstains** when its confidence (best span score minus the
no-answer score) is below a threshold; abstained questions go to `smollm2-135m`, which gets the same
retrieved passages in its prompt. The threshold is chosen on the 24 `tune` questions; results are reported
on the 48 `test` questions, against "always SLM" and "always LLM". A routed question pays for both models.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
if results and "router" in results:
    answers = pd.DataFrame(results["router"]); print(f"router answers: stored run ({len(answers)} questions, both sides)")
else:
    slm, llm = router.both_sides()
    questions = router.load_questions()
    subset = questions[::4]  # every 4th question: a live run of the LLM on all 72 takes minutes
    answers = router.answer_all(subset, slm, llm, progress=False)
    print(f"router answers: measured live now on {len(subset)} of {len(questions)} questions "
          f"(`lmguide bench --extras` answers all of them)")
    del slm, llm; gc.collect()
tune, test = answers[answers["split"] == "tune"], answers[answers["split"] == "test"]
threshold = router.choose_threshold(tune)
print(f"threshold chosen on the tune questions: {threshold:.2f}; retrieval found the gold passage for "
      f"{answers['retrieved'].mean():.0%} of the questions")
router.compare(test, threshold).round(3)
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
show = answers[["kind", "question", "gold", "slm answer", "slm confidence", "llm answer"]].copy()
show["slm confidence"] = show["slm confidence"].round(2)
with pd.option_context("display.max_colwidth", 60):
    display(pd.concat([show[show["kind"] == "easy"].head(3), show[show["kind"] == "hard"].head(3)]))
""")

code(r"""
summary = router.compare(test, threshold)
assert math.isclose(summary.loc["always SLM", "share to LLM"], 0) and math.isclose(summary.loc["always LLM", "share to LLM"], 1)
# the router's latency lies between the two baselines' (it runs the SLM first, the LLM sometimes)
r = summary.iloc[2]
assert summary.loc["always SLM", "mean latency s"] <= r["mean latency s"] <= summary.loc["always SLM", "mean latency s"] + summary.loc["always LLM", "mean latency s"] + 1e-9
""")

md(r"""
## What the article said vs what we measured

Each verdict below is computed from the numbers above (or measured in this cell), with the rule stated:
a ratio above 1.2 in the claimed direction **holds**, between 0.83 and 1.2 **depends**, below **does
not hold here**. "Here" matters: this is one machine, one set of models, one task each.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
def verdict(ratio):
    return "holds" if ratio > 1.2 else "depends" if ratio > 1 / 1.2 else "does not hold here"

llm_name, slm_name = "smollm2-135m", "austen-gpt-small"
L, S = table.loc[llm_name], table.loc[slm_name]

if results and "train step" in results:
    train = pd.DataFrame(results["train step"]).set_index("model"); train_source = "stored run"
else:  # each in its own process, so the notebook's memory stays small
    train = pd.DataFrame([bench.measure_isolated(n, job="train step", repeats=1) for n in (slm_name, llm_name)]).set_index("model")
    train_source = "live"
step_slm, step_llm = train.loc[slm_name, "train step s"], train.loc[llm_name, "train step s"]
hard = test[test["kind"] == "hard"]
llm_hard, slm_hard = hard["llm correct"].mean(), hard["slm correct"].mean()
quant = variants.loc["torch int8"] if "torch int8" in variants.index else None
claims = pd.DataFrame([
    {"claim": "SLMs are faster", "measured": f"{slm_name} {S['tokens/s']:.0f} vs {llm_name} {L['tokens/s']:.0f} tokens/s "
     f"({S['tokens/s'] / L['tokens/s']:.1f}x), though far from its own bound", "verdict": verdict(S["tokens/s"] / L["tokens/s"])},
    {"claim": "SLMs need less memory", "measured": f"model RAM {S['model RAM MiB']:.0f} vs {L['model RAM MiB']:.0f} MiB "
     f"({L['model RAM MiB'] / S['model RAM MiB']:.1f}x less)", "verdict": verdict(L["model RAM MiB"] / S["model RAM MiB"])},
    {"claim": "SLMs are cheaper to fine-tune", "measured": f"one full training step on 64 tokens ({train_source}): "
     f"{step_slm * 1000:.0f} vs {step_llm * 1000:.0f} ms ({step_llm / step_slm:.0f}x), training RAM "
     f"{train.loc[slm_name, 'training RAM MiB']:.0f} vs {train.loc[llm_name, 'training RAM MiB']:.0f} MiB; notebook 04 measures whole runs",
     "verdict": verdict(step_llm / step_slm)},
    {"claim": "more threads make decoding faster", "measured": "; ".join(
        f"{n}: {p.set_index('threads')['tokens/s'].iloc[-1] / p.set_index('threads')['tokens/s'].iloc[0]:.2f}x from 1 to "
        f"{p['threads'].max()} threads" for n, p in scaling.groupby("model")),
     "verdict": verdict(min(p.set_index("threads")["tokens/s"].iloc[-1] / p.set_index("threads")["tokens/s"].iloc[0] for _, p in scaling.groupby("model")))},
    {"claim": "quantization makes a model faster", "measured": "not measured" if quant is None else
     f"SmolLM2 torch int8 {quant['tokens/s']:.1f} vs fp32 {fp32_speed:.1f} tokens/s", "verdict": "-" if quant is None else verdict(quant["tokens/s"] / fp32_speed)},
    {"claim": "LLMs are better at complex tasks", "measured": f"hard test questions right: LLM {llm_hard:.0%}, SLM {slm_hard:.0%} "
     f"({len(hard)} questions)", "verdict": verdict((llm_hard + 1e-9) / (slm_hard + 1e-9)) if len(hard) else "-"},
])
with pd.option_context("display.max_colwidth", 120):
    display(claims.set_index("claim"))
""")

md(r"""
"Quantization barely hurts" is notebook 05's to measure on quality; once its int8 variants are in the
zoo they appear in the comparison table above with their own bits per byte, next to their parent.

## A decision widget

Set what your application needs; the widget filters the **measured** table (not a list of opinions)
and says why each model fits or not. The static output below shows one setting: answering from
documents on a device with 512 MiB to spare and a 200 ms latency budget.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
box = lg.widgets.decision_widget(table)
box.controls["need"].value = "answer from documents"
box.controls["ram"].value = 512
box
""")

code(r"""
picked = box.recommend()
assert set(picked.index) <= set(table.index) and (picked["fits"] == picked["why"].str.startswith("fits")).all()
""")

md(r"""
## Exercises

**1.** A 360 M-parameter model in bf16 on a laptop whose memory moves 50 GB/s: what is its decode bound?
""")

code(r"""
q1 = lg.exercises.get("nb07.decode_bound")
q1.check(...)
# q1.check(your_number)     q1.hint()   q1.solution()
""")

md(r"""
**2.** Write the router's accuracy for a threshold: keep the SLM's answer when its confidence is at least
the threshold, else use the LLM's. (`lg.exercise_bank.nb07.results_frame()` is the small table the check uses.)
""")

code(r"""
q2 = lg.exercises.get("nb07.route")
q2.check(...)
# def route_accuracy(results, threshold): ...
# q2.check(route_accuracy)
""")

md(r"""
**3.** Write `pareto_front(points)` for points `name -> (quality, speed)`, both higher-is-better.
""")

code(r"""
q3 = lg.exercises.get("nb07.pareto")
q3.check(...)
# def pareto_front(points): ...
# q3.check(pareto_front)
""")

md(r"""
**4.** A phone support widget with ~300 MiB to spare and a 0.2 s budget: which choice fits? (Use the table
and the router results above.)
""")

code(r"""
q4 = lg.exercises.get("nb07.which_model")
print(q4.prompt)
q4.check(...)
# q4.check("a" / "b" / "c" / "d")
""")

md(r"""
## Summary

- The comparison table is only meaningful with a rule: same prompt, same text, each model in its own
  process, warm-up, medians, whole held-out splits. `lmguide bench` applies it to every zoo entry,
  including variants added later.
- Decoding one sequence reads every weight per token, so **bandwidth / bytes of weights** bounds its speed.
  Large models sit near that bound; small ones are held back by per-token overhead, so shrinking a model
  past the crossover buys little speed.
- More threads stop helping when memory, or single-threaded overhead, is the bottleneck.
- Fewer bytes (bf16, int8), another engine, or batching each move the numbers differently on different CPUs:
  measure on the machine you deploy to.
- A router is worth it only if it beats both "always" baselines on accuracy *and* latency for your question mix;
  the table above says whether it does here.

## Go further

- `lmguide bench --extras --repeats 5 --json my_machine.json` on another computer; compare the bound plots.
- Add `torch.compile(model)` as an engine in `lmguide.export.engines` and see what it does to the overhead.
- Write harder questions for `data/router/` and see where the router's threshold moves.
- With a network: put a Hub model (e.g. `HuggingFaceTB/SmolLM2-360M-Instruct`) through `bench.measure` and
  place it on the Pareto plot.
""")

nb = nbf.v4.new_notebook()
nb.cells = cells
nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "/work/wt/nb07/notebooks/07_choosing_llm_vs_slm.ipynb")
print(len(cells), "cells")
