"""Distillation loss: the exact formula, the limits alpha = 0 and 1, a teacher left untouched."""

import copy

import pytest
import torch
import torch.nn.functional as F

from weightshare.pruning.distill import distillation_loss


def _nets():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10))
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        student[1].weight.mul_(0.5)
    images = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % 10
    return teacher, student, images, labels


def test_alpha_zero_is_cross_entropy_and_alpha_one_vanishes_on_the_teacher_itself():
    teacher, student, images, labels = _nets()
    logits = student(images)
    plain = distillation_loss(teacher, 0.0, 4.0)(logits, images, labels)
    assert torch.equal(plain, F.cross_entropy(logits, labels))
    same = distillation_loss(teacher, 1.0, 4.0)(teacher(images), images, labels)
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_mixed_loss_is_the_documented_formula_and_trains_only_the_student():
    teacher, student, images, labels = _nets()
    before = copy.deepcopy(teacher.state_dict())
    logits = student(images)
    got = distillation_loss(teacher, 0.7, 3.0)(logits, images, labels)
    p_t = F.softmax(teacher(images) / 3.0, dim=1)
    log_p_s = F.log_softmax(logits / 3.0, dim=1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(1).mean()
    expected = 0.7 * 9.0 * kl + 0.3 * F.cross_entropy(logits, labels)
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    got.backward()
    assert student[1].weight.grad is not None and teacher[1].weight.grad is None
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def _retrained(loss, teacher_scale: float = 1.0):
    from weightshare.networks.lenet import LeNet300
    from weightshare.networks.registry import TrainRecipe
    from weightshare.pruning.magnitude import magnitude_masks
    from weightshare.pruning.retrain import retrain

    torch.manual_seed(0)
    model = LeNet300()
    teacher = copy.deepcopy(model)
    with torch.no_grad():
        teacher.fc3.weight.mul_(teacher_scale)
    masks = magnitude_masks(model, sparsity=0.8)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(256, 1, 28, 28, generator=g), torch.randint(0, 10, (256,), generator=g)
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=0.05, weight_decay=0.0)
    retrain(model, masks, x, y, recipe, loss=loss(teacher) if loss else None)
    return model, masks


def test_retraining_takes_the_loss_and_alpha_zero_retrains_like_plain_cross_entropy():
    plain, masks = _retrained(None)
    same, _ = _retrained(lambda t: distillation_loss(t, 0.0, 4.0))
    distilled, _ = _retrained(lambda t: distillation_loss(t, 0.9, 4.0), teacher_scale=3.0)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, same.state_dict()[key]), key
    assert not torch.equal(plain.fc1.weight, distilled.fc1.weight)
    assert bool((distilled.fc1.weight[~masks["fc1.weight"]] == 0).all())  # masks still frozen
