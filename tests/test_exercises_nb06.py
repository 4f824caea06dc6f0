import torch

from lmguide import exercises
from lmguide.distill import soft_loss, topk_soft_loss, student_from_teacher


def test_soft_probability_reference_and_typed_forms(capsys):
    q = exercises.get("nb06.soft_probability")
    p = torch.tensor([0.90, 0.09, 0.01])
    want = torch.softmax(p.log() / 2, -1)[1].item()
    assert abs(q.solve() - want) < 1e-4 and 0.2 < want < 0.25
    for typed in (q.solve(), round(want, 2), f"{want:.3f}", f"{100 * want:.1f}%", 100 * want):
        assert q.check(typed, quiet=True), typed
    assert not q.check(0.09, quiet=True)
    assert "teacher's own probability" in q.check(0.09, quiet=True).message
    assert "divide the logits" in q.check(0.045, quiet=True).message
    assert "T = 1/2" in q.check(0.09 ** 2 / (0.81 + 0.0081 + 0.0001), quiet=True).message
    assert "expected a number" in q.check("about a fifth", quiet=True).message


def test_student_share_matches_a_built_student():
    import lmguide

    q = exercises.get("nb06.student_share")
    teacher, _ = lmguide.load("austen-gpt-large")
    count = lambda m: sum(p.numel() for p in m.parameters())
    measured = 100 * count(student_from_teacher(teacher, 2)) / count(teacher)
    assert abs(q.solve() - measured) < 0.01
    assert q.check(round(measured, 1), quiet=True) and q.check(str(round(measured)), quiet=True)
    assert "2 of the 8 layers" in q.check(25, quiet=True).message
    assert "in percent" in q.check(measured / 100, quiet=True).message
    assert "more than the teacher" in q.check(100 * count(teacher) / count(student_from_teacher(teacher, 2)),
                                              quiet=True).message


def test_topk_soft_loss_reference_equals_soft_loss_on_the_whole_vocabulary():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 30, generator=g), torch.randn(2, 3, 30, generator=g)
    torch.testing.assert_close(topk_soft_loss(s, t, 30, 2.0), soft_loss(s, t, 2.0))
    assert topk_soft_loss(t, t, 5, 2.0).item() > 0  # the full student distribution is not the truncated one
    q = exercises.get("nb06.topk_soft_loss")
    assert q.check(q.solve(), quiet=True)


def test_topk_soft_loss_messages(capsys):
    q = exercises.get("nb06.topk_soft_loss")
    assert "multiply by T**2" in q.check(q.wrong_example, quiet=True).message

    def summed(s, t, k, temperature=2.0):
        return topk_soft_loss(s, t, k, temperature) * s.shape[0] * s.shape[1]

    def no_renormalise(s, t, k, temperature=2.0):
        top, ids = t.topk(k, dim=-1)
        log_p = torch.log_softmax(t / temperature, -1).gather(-1, ids)
        log_q = torch.log_softmax(s / temperature, -1).gather(-1, ids)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature ** 2

    assert "take the mean" in q.check(summed, quiet=True).message
    message = q.check(no_renormalise, quiet=True).message
    assert "with k=5" in message and "expected" in message  # k = vocabulary passes, k = 5 does not
    assert "pass your function itself" in q.check(3.0, quiet=True).message
    assert "0-d tensor" in q.check(lambda s, t, k, temperature=2.0: s.sum(-1), quiet=True).message
