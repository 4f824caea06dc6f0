"""``pipeline("question-answering")`` for transformers 5, where the task no longer exists.

transformers 5.3 removed the question-answering pipeline (``KeyError: Unknown task
question-answering``), so tutorials written for transformers 4 stop at their first line.
``register()`` adds the task back to transformers' pipeline registry with this module's
``ExtractiveQAPipeline``; after it, the familiar call works on any local extractive QA model:

    from transformers import pipeline
    import lmguide, lmguide.qa_pipeline
    lmguide.qa_pipeline.register()
    model, tokenizer = lmguide.load("minilm-qa")      # float32: the file is float16, slow on a CPU
    reader = pipeline("question-answering", model=model, tokenizer=tokenizer)
    reader(question="Who blushed?", context="... Elizabeth blushed ...")
    # {'score': 0.93, 'start': 171, 'end': 180, 'answer': 'Elizabeth'}

The decoding follows the transformers 4 pipeline, written afresh and kept deliberately
different from ``lmguide.qa`` so that each checks the other: start and end logits become
*probabilities* (a softmax over each window's context tokens), a span scores
``p_start * p_end`` over the upper triangle ``start <= end < start + max_answer_len``,
and ``score`` is that probability. ``lmguide.qa`` adds logits and compares windows by
raw logit sums; on a single window the two must pick the same span, because the
product of two softmaxes is largest where the sum of the logits is.

Registering changes a registry inside transformers for this Python process; nothing
happens on import.
"""
from __future__ import annotations

import math

import torch
from transformers import AutoModelForQuestionAnswering, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from lmguide.qa import check_pair

TASK = "question-answering"


class ExtractiveQAPipeline(Pipeline):
    """Answer a question with a span of the context, the transformers 4 way.

    Call with ``question=..., context=...`` (strings, or two lists of one length), with a
    dict ``{"question": ..., "context": ...}`` or with a list of such dicts. Options (at
    creation or per call): ``top_k`` (answers per question, default 1), ``max_answer_len``
    (tokens, default 15 as in transformers 4), ``max_seq_len`` (window, default 384),
    ``doc_stride`` (tokens shared by neighbouring windows, default 128) and
    ``handle_impossible_answer`` (allow the empty answer, default False).
    Returns ``{"score", "start", "end", "answer"}`` (a list of them when ``top_k`` > 1).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __call__(self, *args, **kwargs):
        if "question" in kwargs or "context" in kwargs:
            if args:
                raise ValueError("pass the question and context either by keyword or as one dict, not both")
            question, context = kwargs.pop("question", None), kwargs.pop("context", None)
            if isinstance(question, list) or isinstance(context, list):
                if not (isinstance(question, list) and isinstance(context, list) and len(question) == len(context)):
                    raise ValueError("question and context must be two lists of the same length "
                                     "(or two strings); got "
                                     f"{type(question).__name__} and {type(context).__name__}")
                return super().__call__([{"question": q, "context": c} for q, c in zip(question, context)],
                                        **kwargs)
            return super().__call__({"question": question, "context": context}, **kwargs)
        if not args:
            raise ValueError("nothing to answer; call reader(question='...', context='...')")
        return super().__call__(*args, **kwargs)

    def _sanitize_parameters(self, top_k=None, max_answer_len=None, max_seq_len=None, doc_stride=None,
                             handle_impossible_answer=None, **unknown):
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)} for the question-answering pipeline; "
                            f"known: top_k, max_answer_len, max_seq_len, doc_stride, handle_impossible_answer")
        preprocess, postprocess = {}, {}
        if max_seq_len is not None:
            preprocess["max_seq_len"] = max_seq_len
        if doc_stride is not None:
            preprocess["doc_stride"] = doc_stride
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len)):
            if value is not None:
                if not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name} must be a whole number >= 1 (got {value!r})")
                postprocess[name] = value
        if handle_impossible_answer is not None:
            postprocess["handle_impossible_answer"] = bool(handle_impossible_answer)
        return preprocess, {}, postprocess

    def preprocess(self, inputs, max_seq_len: int = 384, doc_stride: int = 128):
        if not isinstance(inputs, dict) or set(inputs) != {"question", "context"}:
            raise ValueError(f"each input must be a dict with the keys 'question' and 'context' (got {inputs!r:.80})")
        question, context = inputs["question"], inputs["context"]
        check_pair(question, context, self.tokenizer, max_seq_len, doc_stride)  # the same sentences as lmguide.qa
        enc = self.tokenizer(question, context, truncation="only_second", max_length=max_seq_len,
                             stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                             padding=True, return_tensors="pt")
        in_context = torch.tensor([[sid == 1 for sid in enc.sequence_ids(w)]
                                   for w in range(len(enc["input_ids"]))])   # (W, T)
        model_inputs = {k: enc[k] for k in self.tokenizer.model_input_names if k in enc}
        return {"model_inputs": model_inputs, "offsets": enc["offset_mapping"], "in_context": in_context,
                "context": context}

    def _forward(self, inputs):
        out = self.model(**inputs["model_inputs"])
        return {"start_logits": out.start_logits, "end_logits": out.end_logits,      # (W, T) each
                "offsets": inputs["offsets"], "in_context": inputs["in_context"], "context": inputs["context"]}

    def postprocess(self, outputs, top_k: int = 1, max_answer_len: int = 15, handle_impossible_answer: bool = False):
        context, candidates = outputs["context"], []
        min_null = math.inf
        for w in range(outputs["start_logits"].shape[0]):
            keep = outputs["in_context"][w].clone()
            keep[0] = True                     # [CLS] stays in the softmax: its probability is "no answer"
            p_start = outputs["start_logits"][w].float().masked_fill(~keep, -math.inf).softmax(-1)  # (T,)
            p_end = outputs["end_logits"][w].float().masked_fill(~keep, -math.inf).softmax(-1)      # (T,)
            min_null = min(min_null, float(p_start[0] * p_end[0]))
            p_start[0] = p_end[0] = 0.0           # a span must lie in the context
            outer = p_start[:, None] * p_end[None, :]                  # (T, T): P(start=s) P(end=e)
            spans = torch.tril(torch.triu(outer), max_answer_len - 1)   # s <= e < s + max_answer_len
            flat = spans.flatten()
            best = flat.topk(min(top_k, int((flat > 0).sum()) or 1)).indices
            T = spans.shape[0]
            for i in best.tolist():
                s, e = divmod(i, T)
                if spans[s, e] > 0:
                    a, b = int(outputs["offsets"][w][s][0]), int(outputs["offsets"][w][e][1])
                    candidates.append({"score": float(spans[s, e]), "start": a, "end": b, "answer": context[a:b]})
        if handle_impossible_answer:
            candidates.append({"score": min_null, "start": 0, "end": 0, "answer": ""})
        unique = {}
        for c in sorted(candidates, key=lambda c: -c["score"]):   # one entry per character span
            unique.setdefault((c["start"], c["end"]), c)
        answers = list(unique.values())[:top_k]
        return answers[0] if top_k == 1 else answers


def register() -> None:
    """Add the "question-answering" task to transformers' pipeline registry (idempotent).

    transformers 5 checks a task name against its list of removed tasks before it looks in
    the registry, so the name is also taken off that list (``REMOVED_TASKS``), for this process.
    """
    from transformers import pipelines

    getattr(pipelines, "REMOVED_TASKS", {}).pop(TASK, None)
    if TASK in PIPELINE_REGISTRY.supported_tasks:  # registered already (by us, or a transformers that has it)
        return
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=ExtractiveQAPipeline,
                                        pt_model=AutoModelForQuestionAnswering, type="text")
