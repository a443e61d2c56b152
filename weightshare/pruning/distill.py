"""Knowledge distillation from the dense network while a pruned one is retrained.

Hinton, Vinyals, Dean 2015: the retrained (student) network fits the dense model's softened
outputs as well as the labels. The loss of a batch is

    alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

with ``t`` the teacher's logits on the same (augmented) images, ``s`` the student's and ``T``
the temperature (the ``T^2`` keeps the soft term's gradient on the scale of the hard one).
"""

from __future__ import annotations

from collections.abc import Callable


def distillation_loss(teacher, alpha: float, temperature: float) -> Callable:
    """A ``loss(logits, images, labels) -> scalar`` for :func:`~weightshare.networks.training.fit`.

    Args:
        teacher: the dense PyTorch module (put in eval mode; never trained here).
        alpha: weight of the soft (teacher) term, in [0, 1]; 0 is plain cross-entropy.
        temperature: softening of both distributions, > 0.

    Returns:
        The loss function: ``logits`` float32 (B, classes) of the student on ``images``
        (B, C, S, S), ``labels`` int64 (B,).
    """
    import torch
    import torch.nn.functional as F

    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hard = F.cross_entropy(logits, labels)
        if alpha == 0:
            return hard
        with torch.no_grad():
            target = F.log_softmax(teacher(images) / temperature, dim=1)
        student = F.log_softmax(logits / temperature, dim=1)
        soft = F.kl_div(student, target, reduction="batchmean", log_target=True)
        return alpha * temperature**2 * soft + (1 - alpha) * hard

    return loss
