"""lmguide.instruct: the support texts as chats, the assistant-only mask, its loss and the answer checks."""
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from lmguide import instruct

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def chat_tokenizer():
    """Bytes as tokens, plus ChatML's two special tokens and template (SmolLM2's format)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<|im_start|>": 0, "<|im_end|>": 1, **{ch: i + 2 for i, ch in enumerate(sorted(alphabet))}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", chat_template=CHATML)


def test_support_chats_are_system_then_alternating_turns_from_chats_and_faqs():
    train, test = instruct.support_chats("train"), instruct.support_chats("test")
    assert len(train) > 20 and len(test) >= 5
    for conversation in train + test:
        assert conversation[0] == {"role": "system", "content": instruct.SUPPORT_SYSTEM}
        roles = [t["role"] for t in conversation[1:]]
        assert roles[::2] == ["user"] * len(roles[::2]) and roles[1::2] == ["assistant"] * len(roles[1::2])
        assert roles[-1] == "assistant" and all(t["content"] and ":" not in t["content"][:9] for t in conversation[1:])
    # an FAQ question becomes a conversation of one exchange; a chat keeps its turns
    assert any(len(c) == 3 for c in train) and any(len(c) > 5 for c in train)
    assert not {c[1]["content"] for c in train} & {c[1]["content"] for c in test}


def test_assistant_mask_marks_exactly_the_assistant_turns_and_their_end_token():
    tok = chat_tokenizer()
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi?"},
                {"role": "assistant", "content": "yes."}, {"role": "user", "content": "ok"},
                {"role": "assistant", "content": "bye"}]
    ids, mask = instruct.assistant_mask(tok, messages)
    counted = tok.decode([t for t, m in zip(ids, mask) if m])
    assert counted == "yes.<|im_end|>bye<|im_end|>"
    assert len(ids) == len(mask) and tok.decode(ids) == tok.apply_chat_template(messages, tokenize=False)


def test_chat_dataset_ignores_all_but_the_assistant_unless_asked_and_the_collator_pads_with_ignore():
    tok = chat_tokenizer()
    convs = [[{"role": "user", "content": "a question"}, {"role": "assistant", "content": "an answer"}],
             [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]
    masked, everything = instruct.ChatDataset(tok, convs), instruct.ChatDataset(tok, convs, assistant_only=False)
    assert masked.tokens == everything.tokens == everything.trained_tokens > masked.trained_tokens > 0
    assert all(l == -100 or l == i for e in masked.examples for i, l in zip(e["input_ids"], e["labels"]))
    batch = instruct.chat_collator(tok)([masked[0], masked[1]])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    short = len(masked[1]["input_ids"])
    assert (batch["labels"][1, short:] == -100).all() and (batch["attention_mask"][1, short:] == 0).all()
    assert batch["attention_mask"][0].all()


def test_masked_loss_trains_only_what_the_assistant_says():
    tok = chat_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)).eval()
    conv = [{"role": "system", "content": "S"}, {"role": "user", "content": "kettle?"}, {"role": "assistant", "content": "E1"}]
    item = instruct.ChatDataset(tok, [conv])[0]
    x, y = torch.tensor([item["input_ids"]]), torch.tensor([item["labels"]])
    with torch.no_grad():
        logits = model(x).logits[0]
        keep = y[0, 1:] != -100
        by_hand = torch.nn.functional.cross_entropy(logits[:-1][keep], y[0, 1:][keep])
        torch.testing.assert_close(model(x, labels=y).loss, by_hand)
    assert instruct.assistant_nll(model, tok, [conv]) == pytest.approx(by_hand.item(), rel=1e-5)


def test_follows_format_wants_a_short_turn_that_ended_by_itself():
    good = {"answer": "Hold Warm for 5 seconds.", "stopped": True, "tokens": 8}
    assert instruct.follows_format(good)
    assert not instruct.follows_format({**good, "stopped": False})
    assert not instruct.follows_format({**good, "answer": ""})
    assert not instruct.follows_format({**good, "answer": "Try this. Customer: thanks"})
    assert not instruct.follows_format({**good, "answer": "word " * 41})


def test_support_questions_have_gold_answers_the_scorer_accepts():
    from lmguide import router

    questions = instruct.support_questions()
    assert len(questions) >= 20 and len({q["id"] for q in questions}) == len(questions)
    for q in questions:
        first = q["answers"][0]
        spoken = " and ".join(first) if isinstance(first, list) else first
        assert router.score(spoken, q["answers"])["correct"], q
        assert not router.score("I do not know.", q["answers"])["correct"], q
