"""Instruction tuning (supervised fine-tuning, SFT): a chat model learns to answer in its own chat template.

Notebook 04, section 7. A chat model is trained on conversations rendered by its tokenizer's chat
template, with the loss on the tokens the *assistant* wrote (the system prompt and the user's turns
are context, not targets)::

    conversations = support_chats("train")                  # [{"role", "content"}, ...] each, after a system turn
    ids, mask = assistant_mask(tokenizer, conversations[0]) # which tokens the assistant wrote
    train = ChatDataset(tokenizer, conversations)           # labels -100 outside the assistant's turns
    trainer.data_collator = chat_collator(tokenizer)        # pads ids with the pad token, labels with -100

``assistant_nll`` scores held-out conversations the same way; ``chat_reply`` and ``follows_format``
ask a question and judge the answer's form; ``lmguide.router.score`` judges its content.
(transformers can return this mask itself, ``apply_chat_template(..., return_assistant_tokens_mask=True)``,
when a template marks the assistant's turns with ``{% generation %}``; SmolLM2's does not.)
"""
from __future__ import annotations

import torch

from lmguide.finetune import ensure_pad_token

SUPPORT_SYSTEM = ("You are the support assistant for the Kettlewise K2 smart kettle. "
                  "Answer the customer in one or two short sentences.")
ROLES = {"Customer": "user", "Agent": "assistant", "Q": "user", "A": "assistant"}


def support_chats(split: str = "train", system: str = SUPPORT_SYSTEM) -> list[list[dict]]:
    """The support texts of ``split`` as conversations (``{"role", "content"}`` turns after a system turn).

    A chat document is one conversation (Customer -> user, Agent -> assistant); each question and
    answer of an FAQ is a conversation of its own. Help articles are not conversations and are left out.
    """
    from lmguide.data import support_documents

    conversations = []
    for doc in support_documents(split):
        if doc["kind"] not in ("chat", "faq"):
            continue
        turns = []
        for line in doc["text"].splitlines():
            speaker, _, said = line.partition(": ")
            if speaker in ROLES and said:
                turns.append({"role": ROLES[speaker], "content": said.strip()})
            elif turns and line.strip():                    # a turn that runs over two lines
                turns[-1]["content"] += " " + line.strip()
        if doc["kind"] == "faq":                            # one conversation per question
            conversations += [turns[i:i + 2] for i in range(0, len(turns) - 1, 2)]
        else:
            conversations.append(turns)
    return [[{"role": "system", "content": system}] + c for c in conversations]


def assistant_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[bool]]:
    """The conversation's token ids in the tokenizer's chat template, and which of them the assistant wrote.

    Each assistant turn spans from where the template would start the assistant's answer (the
    rendering of the turns before it, with the generation prompt) to the end of that turn's
    rendering, its end-of-turn token included (the line break after it is not): the tokens a chat
    model must learn to produce, stopping included.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, turn in enumerate(messages):
        if turn["role"] == "assistant":
            start = len(tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True))
            upto = tokenizer.apply_chat_template(messages[:i + 1], tokenize=False)
            end = len(upto.rstrip())                        # the line break after the end-of-turn token is the template's
            if not text.startswith(upto):
                raise ValueError("this chat template does not render a conversation's turns as prefixes of it; "
                                 "mark the assistant's tokens another way")
            spans.append((start, end))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    mask = [any(a <= lo < b for a, b in spans) for lo, _ in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


class ChatDataset(torch.utils.data.Dataset):
    """Conversations as ``{"input_ids", "labels"}``: labels are -100 (ignored) outside the assistant's
    turns, or everywhere the ids are when ``assistant_only=False`` (the mistake notebook 04 measures)."""

    def __init__(self, tokenizer, conversations: list[list[dict]], assistant_only: bool = True):
        self.examples = []
        for messages in conversations:
            ids, mask = assistant_mask(tokenizer, messages)
            labels = [t if (m or not assistant_only) else -100 for t, m in zip(ids, mask)]
            self.examples.append({"input_ids": ids, "labels": labels})
        self.tokens = sum(len(e["input_ids"]) for e in self.examples)
        self.trained_tokens = sum(sum(t != -100 for t in e["labels"]) for e in self.examples)

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return dict(self.examples[i])


def chat_collator(tokenizer):
    """Pads a batch of ``ChatDataset`` examples on the right: ids with the pad token, labels with -100."""
    pad = ensure_pad_token(tokenizer).pad_token_id

    def collate(batch):
        n = max(len(e["input_ids"]) for e in batch)
        ids = torch.full((len(batch), n), pad, dtype=torch.long)
        labels = torch.full((len(batch), n), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for row, e in enumerate(batch):
            k = len(e["input_ids"])
            ids[row, :k], labels[row, :k], mask[row, :k] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def assistant_nll(model, tokenizer, conversations: list[list[dict]]) -> float:
    """Mean negative log-likelihood (nats per token) of the assistant's tokens, given everything before them."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for messages in conversations:
            ids, mask = assistant_mask(tokenizer, messages)
            logits = model(torch.tensor([ids])).logits[0, :-1]                # (T - 1, V): predicts ids[1:]
            nll = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(ids[1:]), reduction="none")
            keep = torch.tensor(mask[1:])
            total, count = total + nll[keep].sum().item(), count + int(keep.sum())
    return total / count


def chat_reply(model, tokenizer, question: str, system: str = SUPPORT_SYSTEM, max_new_tokens: int = 64) -> dict:
    """The model's greedy answer to one customer question: ``{"answer", "tokens", "stopped"}``.

    ``stopped``: the model ended its turn itself within ``max_new_tokens``."""
    from lmguide.sampling import greedy_generate

    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = torch.tensor([list(ids["input_ids"] if hasattr(ids, "keys") else ids)])
    model.eval()
    with torch.no_grad():
        out = greedy_generate(model, ids, max_new_tokens, eos_token_id=tokenizer.eos_token_id)[0, ids.shape[1]:].tolist()
    stopped = tokenizer.eos_token_id in out
    new = out[:out.index(tokenizer.eos_token_id)] if stopped else out
    return {"answer": tokenizer.decode(new, skip_special_tokens=True).strip(), "tokens": len(new), "stopped": stopped}


def follows_format(reply: dict, max_words: int = 40) -> bool:
    """A support answer's format: it ends by itself, speaks only for the agent, and stays short."""
    text = reply["answer"]
    other_turn = any(tag in text for tag in ("Customer:", "User:", "user\n", "<|im_start|>"))
    return reply["stopped"] and bool(text) and not other_turn and len(text.split()) <= max_words


def support_questions() -> list[dict]:
    """Held-out customer questions with gold answers (``lmguide/assets/support/questions.json``)."""
    import json
    from importlib import resources

    return json.loads(resources.files("lmguide.assets").joinpath("support/questions.json").read_text())["questions"]
