"""Interactive widgets for the notebooks (ipywidgets). Each function returns a widget to display.

Widgets need a running Jupyter kernel to react; every notebook shows a static example
output under the widget cell, so a reader of the rendered page sees what it does.
"""
from __future__ import annotations

import html

# the generation widget's layout: labels in one column wide enough for the longest one
# ("temperature (0 = greedy)", 24 characters at about 7 px each), controls of one width
LABEL_WIDTH = "190px"
CONTROL_WIDTH = "560px"


# --- notebook 02: generation ------------------------------------------------------------------
def generation_widget(models=("austen-gpt-large", "smollm2-135m"),
                      prompt: str = "It is a truth universally acknowledged, that",
                      max_new_tokens: int = 40, seed: int = 0):
    """A prompt box, a model picker, sliders for temperature / top-k / top-p / new tokens, and an output area.

    Args:
        models: zoo names (each loaded with ``lg.load`` the first time it is picked) or a dict
            ``name -> (model, tokenizer)`` of models already loaded.
    Temperature 0 means greedy decoding; top-k 0 and top-p 1.0 switch those filters off.
    The returned box has ``.controls`` (name -> widget) and ``.generate()`` (what the button
    does: returns the new text and shows it in the output area).
    """
    import ipywidgets as w

    from lmguide.sampling import context_length, generate_text

    loaded = dict(models) if isinstance(models, dict) else {}
    names = list(models)
    if not names:
        raise ValueError("models is empty; pass at least one zoo name, e.g. models=['austen-gpt-large']")

    def get(name):
        if name not in loaded:
            from lmguide.zoo import load

            loaded[name] = load(name)
        return loaded[name]

    # One label column and one track width for every control: the labels are never cut
    # ("temperat...") and every slider's track starts at the same place.
    label = {"description_width": LABEL_WIDTH}
    row = lambda: w.Layout(width=CONTROL_WIDTH)  # noqa: E731  (each widget needs its own Layout)
    controls = {
        "prompt": w.Textarea(value=prompt, description="Prompt", rows=2, style=label,
                             layout=w.Layout(width="95%")),
        "model": w.Dropdown(options=names, value=names[0], description="Model", style=label,
                            layout=row()),
        "temperature": w.FloatSlider(value=0.8, min=0.0, max=2.0, step=0.05,
                                     description="temperature (0 = greedy)", readout_format=".2f",
                                     style=label, layout=row()),
        "top_k": w.IntSlider(value=50, min=0, max=200, step=1, description="top-k (0 = off)",
                             style=label, layout=row()),
        "top_p": w.FloatSlider(value=0.9, min=0.05, max=1.0, step=0.05, description="top-p (1 = off)",
                               readout_format=".2f", style=label, layout=row()),
        "max_new_tokens": w.IntSlider(value=max_new_tokens, min=1, max=200, step=1,
                                      description="new tokens", style=label, layout=row()),
        "seed": w.IntText(value=seed, description="seed", style=label, layout=row()),
        "generate": w.Button(description="Generate", button_style="primary",
                             layout=w.Layout(margin=f"2px 0 2px {LABEL_WIDTH}")),  # under the tracks
        "output": w.HTML(value="<i>Press Generate.</i>"),
    }
    c = controls

    def generate(_button=None) -> str:
        model, tokenizer = get(c["model"].value)
        text_in = c["prompt"].value
        n_prompt = len(tokenizer(text_in)["input_ids"]) if text_in else 0
        room = (context_length(model) or 10**9) - n_prompt
        n_new = min(c["max_new_tokens"].value, room)
        note = "" if n_new == c["max_new_tokens"].value else \
            f"<br><i>(only {max(n_new, 0)} new tokens fit in the model's context of {context_length(model)})</i>"
        t = c["temperature"].value
        try:
            if n_new < 1:
                raise ValueError(f"the prompt ({n_prompt} tokens) fills the model's context; shorten it")
            new = generate_text(model, tokenizer, text_in, max_new_tokens=n_new,
                                strategy="greedy" if t == 0 else "sample", temperature=t or 1.0,
                                top_k=c["top_k"].value or None,
                                top_p=None if c["top_p"].value >= 1.0 else c["top_p"].value,
                                seed=c["seed"].value)
        except ValueError as err:
            c["output"].value = f"<b>Cannot generate:</b> {html.escape(str(err))}"
            return ""
        c["output"].value = (f"<pre style='white-space: pre-wrap'><b>{html.escape(text_in)}</b>"
                             f"{html.escape(new)}</pre>{note}")
        return new

    c["generate"].on_click(generate)
    box = w.VBox([c["prompt"], c["model"], c["seed"], c["temperature"], c["top_k"], c["top_p"],
                  c["max_new_tokens"], c["generate"], c["output"]])
    box.controls = controls
    box.generate = generate
    return box


# --- notebook 01: attention heads ---------------------------------------------------------------
def attention_explorer(sources: dict, layer: int = 0, head: int = 0):
    """A model picker and layer / head sliders that draw one attention head as a heatmap.

    Args:
        sources: name -> (attentions, tokens), where ``attentions`` is what a model returns with
            ``output_attentions=True`` (one (1, n_head, T, T) or (n_head, T, T) tensor per layer)
            and ``tokens`` labels the T positions.
    The returned box has ``.controls`` (name -> widget) and ``.draw()`` (redraws the picture and
    returns the matplotlib figure).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from lmguide.plots import attention_head

    if not sources:
        raise ValueError("sources is empty; pass name -> (out.attentions, tokens) for at least one model")

    def shape(name):  # (layers, heads) of a source
        attentions, _ = sources[name]
        return len(attentions), attentions[0].shape[-3]

    names = list(sources)
    n_layers, n_heads = shape(names[0])
    controls = {
        "model": w.Dropdown(options=names, value=names[0], description="Model"),
        "layer": w.IntSlider(value=min(layer, n_layers - 1), min=0, max=n_layers - 1, description="layer"),
        "head": w.IntSlider(value=min(head, n_heads - 1), min=0, max=n_heads - 1, description="head"),
        "output": w.Output(),
    }
    c = controls

    drawing = []  # set while draw() runs: clamping a slider must not start a second drawing

    def draw(_change=None):
        if drawing:
            return None
        drawing.append(True)
        try:
            name = c["model"].value
            n_layers, n_heads = shape(name)
            c["layer"].max, c["head"].max = n_layers - 1, n_heads - 1  # a slider clamps its value to max
            attentions, tokens = sources[name]
            weights = attentions[c["layer"].value]
            weights = weights[0] if weights.dim() == 4 else weights  # (n_head, T, T)
            fig = attention_head(weights[c["head"].value], tokens,
                                 title=f"{name}: layer {c['layer'].value}, head {c['head'].value}")
            c["output"].clear_output(wait=True)
            with c["output"]:
                display(fig)
            plt.close(fig)  # shown once, in the output area, not again at the end of the cell
            return fig
        finally:
            drawing.pop()

    for key in ("model", "layer", "head"):
        c[key].observe(draw, names="value")
    draw()
    box = w.VBox([w.HBox([c["model"], c["layer"], c["head"]]), c["output"]])
    box.controls = controls
    box.draw = draw
    return box


# --- notebook 07: choosing a model ---------------------------------------------------------------
def decision_widget(frame):
    """Sliders for latency, memory and speed needs and a task; shows :func:`lmguide.measure.table.recommend`'s table.

    ``box.recommend()`` redraws and returns the table for the current settings (the tests call it).
    """
    import ipywidgets as w
    from IPython.display import display

    from lmguide.measure.table import NEEDS, recommend

    need = w.Dropdown(options=list(NEEDS), value="write text", description="task")
    ram = w.FloatLogSlider(value=1024, base=2, min=5, max=14, step=0.5, description="RAM MiB")
    first = w.FloatLogSlider(value=200, base=10, min=0, max=4, step=0.25, description="first ms")
    speed = w.FloatSlider(value=10, min=0, max=200, step=5, description="tokens/s")
    out = w.Output()

    def draw(_change=None):
        table = recommend(frame, need.value, ram.value, first.value, speed.value)
        out.clear_output(wait=True)
        with out:
            fits = table.index[table["fits"]].tolist()
            print("recommended: " + (", ".join(fits) if fits else "nothing measured fits; relax a limit"))
            display(table)
        return table

    for control in (need, ram, first, speed):
        control.observe(draw, names="value")
    draw()
    box = w.VBox([w.HBox([need, ram]), w.HBox([first, speed]), out])
    box.controls = {"need": need, "ram": ram, "first": first, "speed": speed}
    box.recommend = draw
    return box
