import torch

from lmguide import exercises
from lmguide.distill import soft_loss, topk_soft_loss, student_from_teacher


def test_temperature_for_is_where_soften_gives_a_quarter(capsys):
    from lmguide.distill import soften

    q = exercises.get("nb06.temperature_for")
    p = torch.tensor([0.90, 0.09, 0.01]).log()
    assert abs(soften(p, q.solve())[1].item() - 0.25) < 1e-6 and 2.3 < q.solve() < 2.5
    for typed in (q.solve(), round(q.solve(), 2), f"{q.solve():.2f}", "2.4"):
        assert q.check(typed, quiet=True), typed
    assert "at or below 0.09" in q.check(0.5, quiet=True).message
    assert "1/T" in q.check(1 / q.solve(), quiet=True).message
    assert "expected a number" in q.check("about two", quiet=True).message


def test_layers_for_half_matches_built_students():
    import lmguide

    q = exercises.get("nb06.layers_for_half")
    teacher, _ = lmguide.load("austen-gpt-large")
    count = lambda m: sum(p.numel() for p in m.parameters())
    shares = {n: count(student_from_teacher(teacher, n)) / count(teacher) for n in range(1, 8)}
    assert q.solve() == max(n for n, s in shares.items() if s <= 0.5)
    assert q.check(str(q.solve()), quiet=True)
    assert "embeddings are kept whole" in q.check(4, quiet=True).message


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
