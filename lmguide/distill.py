"""Knowledge distillation: a small student learns from a big teacher's whole distribution.

A language model's training label says only which token came next. The teacher's
softmax says much more: which other tokens were plausible, and how plausible. Hinton
et al. (2015) train the student on both::

    soft  = KL(softmax(teacher / T) || softmax(student / T)) * T**2    # the teacher's view
    hard  = cross_entropy(student, next_token)                         # the data's view
    loss  = alpha * soft + (1 - alpha) * hard

A temperature ``T > 1`` flattens both distributions so that the small probabilities (the
"dark knowledge") carry weight. Dividing logits by ``T`` shrinks the soft loss's gradient
by about ``1 / T**2``; multiplying by ``T**2`` puts it back on the scale of the hard loss,
so ``alpha`` means the same thing at every temperature (:func:`soft_gradient_norm` shows it).

DistilBERT (Sanh et al., 2019) adds a recipe for the student: keep the teacher's width,
keep every other layer, and start from the teacher's own weights (:func:`student_from_teacher`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from lmguide.sampling import check_temperature


def soften(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The temperature-softened softmax ``softmax(logits / T)`` over the last axis."""
    check_temperature(temperature, fix="T = 1 is the plain softmax")
    return torch.softmax(logits.float() / temperature, dim=-1)


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
              mask: torch.Tensor | None = None, scale: bool = True) -> torch.Tensor:
    """KL(teacher_T || student_T) per position, averaged over positions, times ``T**2`` when ``scale``.

    ``student_logits`` and ``teacher_logits``: (..., vocab). ``mask`` (...,) marks the
    positions that count (all of them when None).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits must have the same shape "
                         f"(got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)})")
    check_temperature(temperature, fix="T = 1 is the plain softmax")
    log_q = torch.log_softmax(student_logits.float() / temperature, dim=-1)  # student, (..., V)
    log_p = torch.log_softmax(teacher_logits.float() / temperature, dim=-1)  # teacher, (..., V)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # (...,): one KL per position
    if mask is not None:
        kl = kl[mask]
    loss = kl.mean()
    return loss * temperature ** 2 if scale else loss


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = 2.0, alpha: float = 0.5, ignore_index: int = -100) -> dict:
    """``alpha * soft + (1 - alpha) * hard``; returns {"loss", "soft", "hard"} (scalars).

    ``labels`` (...,) holds the next token at each position (``ignore_index`` where none);
    ``alpha = 0`` is ordinary training, ``alpha = 1`` learns from the teacher alone.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (got {alpha}); it is the weight of the teacher's loss")
    vocab = student_logits.shape[-1]
    flat_labels = labels.reshape(-1)
    mask = flat_labels != ignore_index
    hard = F.cross_entropy(student_logits.float().reshape(-1, vocab), flat_labels, ignore_index=ignore_index)
    soft = soft_loss(student_logits.reshape(-1, vocab), teacher_logits.reshape(-1, vocab), temperature, mask)
    return {"loss": alpha * soft + (1 - alpha) * hard, "soft": soft, "hard": hard}


def topk_soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int,
                   temperature: float = 2.0) -> torch.Tensor:
    """:func:`soft_loss` against the teacher's ``k`` most likely tokens only (renormalised among them).

    What a run that stores only the teacher's top-k logits per position can compute; with
    ``k`` = the vocabulary size it is :func:`soft_loss` exactly.
    """
    check_temperature(temperature, fix="T = 1 is the plain softmax")
    top, index = teacher_logits.float().topk(k, dim=-1)  # (..., k)
    log_p = torch.log_softmax(top / temperature, dim=-1)  # the teacher among its top k
    log_q = torch.log_softmax(student_logits.float() / temperature, dim=-1).gather(-1, index)  # (..., k)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature ** 2


def torch_distillation_loss(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5,
                            ignore_index=-100) -> torch.Tensor:
    """The same loss from torch's own pieces (``F.kl_div`` and ``F.cross_entropy``): the check."""
    vocab = student_logits.shape[-1]
    keep = labels.reshape(-1) != ignore_index
    s = student_logits.float().reshape(-1, vocab)[keep]
    t = teacher_logits.float().reshape(-1, vocab)[keep]
    soft = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                    reduction="batchmean", log_target=True) * temperature ** 2
    hard = F.cross_entropy(student_logits.float().reshape(-1, vocab), labels.reshape(-1),
                           ignore_index=ignore_index)
    return alpha * soft + (1 - alpha) * hard


def soft_gradient_norm(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                       scale: bool) -> float:
    """Size of d(soft loss)/d(student logits), with or without the ``T**2`` factor."""
    s = student_logits.detach().float().clone().requires_grad_(True)
    soft_loss(s, teacher_logits.detach(), temperature, scale=scale).backward()
    return s.grad.norm().item()


def every_other_layer(n_teacher: int, n_student: int) -> list[int]:
    """Which teacher layers a student keeps: evenly spaced from the first, DistilBERT's rule.

    12 -> 6 keeps 0, 2, 4, 6, 8, 10 (every other layer); 8 -> 3 keeps 0, 2, 5.
    """
    if not 1 <= n_student <= n_teacher:
        raise ValueError(f"a student needs 1..{n_teacher} layers (got {n_student})")
    return [i * n_teacher // n_student for i in range(n_student)]


def student_from_teacher(teacher, n_layer: int, layers: list[int] | None = None, init: str = "copy",
                         seed: int = 0):
    """A GPT-2 student with ``n_layer`` blocks and the teacher's width, vocabulary and context.

    ``init="copy"``: embeddings, final layer norm and blocks ``layers`` (default
    :func:`every_other_layer`) are copied from the teacher. ``init="random"``: the same
    architecture with transformers' random initialisation (seeded), the baseline.
    """
    from transformers import GPT2LMHeadModel

    if init not in ("copy", "random"):
        raise ValueError(f"init must be 'copy' or 'random' (got {init!r})")
    n_teacher = teacher.config.n_layer
    layers = every_other_layer(n_teacher, n_layer) if layers is None else list(layers)
    if len(layers) != n_layer or not all(0 <= i < n_teacher for i in layers):
        raise ValueError(f"layers must be {n_layer} indices in 0..{n_teacher - 1} (got {layers})")
    config = copy.deepcopy(teacher.config)
    config.n_layer = n_layer
    torch.manual_seed(seed)
    student = GPT2LMHeadModel(config).to(next(teacher.parameters()).dtype)
    if init == "copy":
        with torch.no_grad():
            student.transformer.wte.load_state_dict(teacher.transformer.wte.state_dict())
            student.transformer.wpe.load_state_dict(teacher.transformer.wpe.state_dict())
            student.transformer.ln_f.load_state_dict(teacher.transformer.ln_f.state_dict())
            for mine, theirs in enumerate(layers):
                student.transformer.h[mine].load_state_dict(teacher.transformer.h[theirs].state_dict())
        student.tie_weights()
    student.config.distilled_from_layers = layers if init == "copy" else None
    return student


def forward_flops_per_token(model, n_ctx: int) -> float:
    """Kaplan et al.'s (2020) estimate of one forward pass, per token: ``2 N + 2 n_layer n_ctx d``.

    ``N`` counts the weights a token is multiplied by: every block's matrices and the output
    layer (tied to the token embeddings in GPT-2); position embeddings, biases and layer norms
    are additions, not multiplications. The second term is attention's scores and weighted sum.
    """
    c = model.config
    blocks = sum(p.numel() for name, p in model.transformer.h.named_parameters() if p.dim() == 2)
    head = model.lm_head.weight.numel()
    return 2.0 * (blocks + head) + 2.0 * c.n_layer * n_ctx * c.n_embd


def kd_compute_ratio(teacher, student, n_ctx: int) -> float:
    """How many times a distillation step costs a plain training step of the same student.

    A training step is a forward and a backward pass (the backward about twice the forward:
    3 forwards in all); distillation adds one forward of the teacher. An equal-compute control
    trains the student alone for ``ratio`` times as many steps.
    """
    s, t = forward_flops_per_token(student, n_ctx), forward_flops_per_token(teacher, n_ctx)
    return (3 * s + t) / (3 * s)
