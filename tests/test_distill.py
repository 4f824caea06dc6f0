import math

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from lmguide.distill import (distillation_loss, every_other_layer, soft_gradient_norm, soft_loss, soften,
                             student_from_teacher, torch_distillation_loss)


def logits(*shape, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


def tiny_teacher(n_layer=4):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=n_layer, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).eval()


def test_soften_is_a_flatter_distribution_at_higher_temperature():
    z = logits(5, 10)
    p1, p4 = soften(z, 1.0), soften(z, 4.0)
    torch.testing.assert_close(p1, torch.softmax(z, -1))
    torch.testing.assert_close(p4.sum(-1), torch.ones(5))
    entropy = lambda p: -(p * p.log()).sum(-1)
    assert (entropy(p4) > entropy(p1)).all()


def test_loss_matches_torch_composition_with_ignored_positions():
    s, t = logits(2, 7, 30, seed=1), logits(2, 7, 30, seed=2)
    labels = torch.randint(0, 30, (2, 7))
    labels[0, :3] = -100
    for T, alpha in [(1.0, 0.0), (2.0, 0.5), (4.0, 0.9), (0.5, 1.0)]:
        mine = distillation_loss(s, t, labels, T, alpha)
        torch.testing.assert_close(mine["loss"], torch_distillation_loss(s, t, labels, T, alpha))
        torch.testing.assert_close(mine["hard"], F.cross_entropy(s.reshape(-1, 30), labels.reshape(-1)))


def test_soft_loss_is_zero_only_when_student_matches_teacher():
    t = logits(4, 12, seed=3)
    assert soft_loss(t.clone(), t, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_loss(t + 1.0, t, 2.0).item() == pytest.approx(0.0, abs=1e-6)  # a shift changes no softmax
    assert soft_loss(logits(4, 12, seed=4), t, 2.0).item() > 0.01


def test_alpha_zero_is_plain_cross_entropy_and_ignores_the_teacher():
    s, labels = logits(3, 20, seed=5), torch.randint(0, 20, (3,))
    a = distillation_loss(s, logits(3, 20, seed=6), labels, 2.0, alpha=0.0)["loss"]
    b = distillation_loss(s, logits(3, 20, seed=7), labels, 2.0, alpha=0.0)["loss"]
    torch.testing.assert_close(a, F.cross_entropy(s, labels))
    torch.testing.assert_close(a, b)


def test_t_squared_keeps_the_soft_gradient_on_one_scale():
    s, t = logits(64, 100, scale=1.0, seed=8), logits(64, 100, scale=1.0, seed=9)
    raw = [soft_gradient_norm(s, t, T, scale=False) for T in (2.0, 4.0, 8.0)]
    scaled = [soft_gradient_norm(s, t, T, scale=True) for T in (2.0, 4.0, 8.0)]
    # without T^2 the gradient shrinks about 4x each time T doubles; with it, it stays within 2x
    assert raw[0] / raw[1] == pytest.approx(4.0, rel=0.35) and raw[1] / raw[2] == pytest.approx(4.0, rel=0.2)
    assert max(scaled) / min(scaled) < 2.0


def test_bad_arguments_say_what_is_wrong():
    s = logits(2, 5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        soften(s, 0)
    with pytest.raises(ValueError, match="alpha must be in"):
        distillation_loss(s, s, torch.zeros(2, dtype=torch.long), alpha=1.5)
    with pytest.raises(ValueError, match="same shape"):
        soft_loss(s, logits(2, 6))


def test_every_other_layer():
    assert every_other_layer(12, 6) == [0, 2, 4, 6, 8, 10]
    assert every_other_layer(8, 4) == [0, 2, 4, 6]
    assert every_other_layer(8, 3) == [0, 2, 5]
    assert every_other_layer(8, 8) == list(range(8))
    with pytest.raises(ValueError, match="needs 1..8 layers"):
        every_other_layer(8, 9)


def test_copied_student_holds_the_teacher_layers_it_names():
    teacher = tiny_teacher(4)
    student = student_from_teacher(teacher, 2).eval()
    assert student.config.n_layer == 2 and teacher.config.n_layer == 4
    for mine, theirs in zip(range(2), [0, 2]):
        for (name, a), (_, b) in zip(student.transformer.h[mine].state_dict().items(),
                                     teacher.transformer.h[theirs].state_dict().items()):
            torch.testing.assert_close(a, b, msg=name)
    torch.testing.assert_close(student.transformer.wte.weight, teacher.transformer.wte.weight)
    assert student.lm_head.weight.data_ptr() == student.transformer.wte.weight.data_ptr()  # still tied
    # a student given every teacher layer is the teacher
    x = torch.randint(0, 50, (1, 10))
    same = student_from_teacher(teacher, 4).eval()
    torch.testing.assert_close(same(x).logits, teacher(x).logits)


def test_copied_student_starts_closer_to_the_teacher_than_a_random_one():
    teacher = tiny_teacher(4)
    x = torch.randint(0, 50, (4, 12))
    with torch.no_grad():
        t = teacher(x).logits
        copied = soft_loss(student_from_teacher(teacher, 2).eval()(x).logits, t, 1.0).item()
        random = soft_loss(student_from_teacher(teacher, 2, init="random").eval()(x).logits, t, 1.0).item()
    assert copied < random
    with pytest.raises(ValueError, match="init must be"):
        student_from_teacher(teacher, 2, init="zeros")
    with pytest.raises(ValueError, match="layers must be"):
        student_from_teacher(teacher, 2, layers=[0, 7])


def test_forward_flops_follow_kaplan_and_a_kd_step_costs_one_teacher_forward_more():
    from lmguide.distill import forward_flops_per_token, kd_compute_ratio

    teacher = tiny_teacher(4)
    c = teacher.config
    per_block = 12 * c.n_embd ** 2                     # c_attn 3d^2 + c_proj d^2 + MLP 8d^2
    expected = 2 * (c.n_layer * per_block + c.vocab_size * c.n_embd) + 2 * c.n_layer * 16 * c.n_embd
    assert forward_flops_per_token(teacher, n_ctx=16) == expected
    student = student_from_teacher(teacher, 2)
    ratio = kd_compute_ratio(teacher, student, n_ctx=16)
    s, t = forward_flops_per_token(student, 16), forward_flops_per_token(teacher, 16)
    assert ratio == pytest.approx(1 + t / (3 * s)) and 1 < ratio < 2
    assert kd_compute_ratio(student, student, 16) == pytest.approx(4 / 3)   # a teacher the student's size: one more forward
