"""Knowledge distillation of the MobileNetV2-SSDLite: a trained teacher guides a student.

Teacher and student share the input size, the anchors (same six feature-map grids whatever the
width) and the classes; the student is usually slimmer (``width_mult`` 0.5). For a batch of B
images the student minimises

``L = L_box + L_cls + alpha * L_kd_cls + beta * L_kd_box``

* ``L_box``, ``L_cls``: torchvision's SSD losses on the ground truth (smooth-L1 on matched
  anchors, cross-entropy with 3:1 hard-negative mining, both divided by the matched anchors);
* ``L_kd_cls = T^2 * (mean_{(b, a) in F} KL_ba + mean_{(b, a) not in F} KL_ba)`` with
  ``KL_ba = KL(softmax(z_t / T) || softmax(z_s / T))`` on the K + 1 class logits ``z`` of anchor
  ``a`` of image ``b`` softened by temperature ``T`` (Hinton et al., 2015; ``T^2`` keeps the
  gradient scale independent of T). F is the set of anchors the teacher finds foreground (its
  background probability below 0.5, about 1 % of the 3234 anchors here): averaging foreground
  and background anchors separately keeps the teacher's knowledge about objects from being
  drowned by the background anchors; at initialisation the term is about as large as ``L_cls``.
* ``L_kd_box = 1 / |F| * sum_{(b, a) in F} smooth_L1(r_s - r_t)`` (beta 1, summed over the
  4 encoded offsets), the per-positive normalisation of the SSD box loss, so the student also
  learns the teacher's box refinements on objects the ground truth does not match well.

With ``alpha = beta = 0`` the teacher is not run and the student trains alone: the baseline of
the comparison.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional
from torchvision.models.detection.ssd import SSD

from litedet_ros.detection.model import RawSSD, model_anchors
from litedet_ros.detection.prune import CompressionError

#: Teacher background probability below which an anchor counts as foreground.
FOREGROUND_THRESHOLD = 0.5


def distillation_losses(student_regressions: Tensor, student_logits: Tensor,
                        teacher_regressions: Tensor, teacher_logits: Tensor,
                        temperature: float) -> tuple[Tensor, Tensor]:
    """The two distillation terms (see the module docstring), unweighted.

    Args:
        student_regressions: ``float[B, A, 4]`` encoded box offsets of the student.
        student_logits: ``float[B, A, K + 1]`` class logits of the student (0 = background).
        teacher_regressions: ``float[B, A, 4]`` of the teacher (no gradient needed).
        teacher_logits: ``float[B, A, K + 1]`` of the teacher.
        temperature: softmax temperature T > 0.

    Returns:
        ``(L_kd_cls, L_kd_box)``, scalar tensors.
    """
    teacher_log_p = functional.log_softmax(teacher_logits / temperature, dim=-1)
    student_log_p = functional.log_softmax(student_logits / temperature, dim=-1)
    foreground = functional.softmax(teacher_logits, dim=-1)[..., 0] < FOREGROUND_THRESHOLD
    kl = functional.kl_div(student_log_p, teacher_log_p, reduction='none',
                           log_target=True).sum(-1)
    box = functional.smooth_l1_loss(student_regressions[foreground],
                                    teacher_regressions[foreground], beta=1.0, reduction='sum')
    return (temperature ** 2 * (_mean(kl, foreground) + _mean(kl, ~foreground)),
            box / foreground.sum().clamp(min=1))


def _mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values[mask]``, 0 for an empty mask."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


class DistillationLoss:
    """Loss function for :func:`litedet_ros.detection.train.train`: SSD losses + distillation.

    Args:
        teacher: trained SSD (frozen, eval mode, never updated).
        alpha: weight of the softened-class KL term.
        beta: weight of the teacher-box smooth-L1 term.
        temperature: softmax temperature T > 0.

    Raises:
        CompressionError: negative weights or temperature <= 0.
    """

    def __init__(self, teacher: SSD, alpha: float = 1.0, beta: float = 1.0,
                 temperature: float = 2.0) -> None:
        if alpha < 0 or beta < 0 or temperature <= 0:
            raise CompressionError(f'alpha, beta must be >= 0 and temperature > 0, got '
                                   f'{alpha}, {beta}, {temperature}')
        self.teacher = RawSSD(teacher.eval()).requires_grad_(False)
        self.alpha = alpha
        self.beta = beta
        self.temperature = temperature

    def __call__(self, student: SSD, images: list[Tensor],
                 targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Return the weighted loss terms of one training batch.

        Keys: ``bbox_regression``, ``classification`` and, unless both weights are 0,
        ``kd_cls`` (times alpha) and ``kd_box`` (times beta).
        """
        if self.alpha == 0 and self.beta == 0:
            return student(images, targets)
        seen: dict[str, object] = {}
        # The SSD normalises and batches the images itself: the teacher gets that same tensor.
        hooks = [
            student.backbone.register_forward_pre_hook(
                lambda _, args: seen.__setitem__('input', args[0])),
            student.head.register_forward_hook(
                lambda _, args, output: seen.__setitem__('head', output)),
        ]
        try:
            losses = student(images, targets)
        finally:
            for hook in hooks:
                hook.remove()
        with torch.no_grad():
            teacher_regressions, teacher_logits = self.teacher(seen['input'])
        kd_cls, kd_box = distillation_losses(
            seen['head']['bbox_regression'], seen['head']['cls_logits'], teacher_regressions,
            teacher_logits, self.temperature)
        return {**losses, 'kd_cls': self.alpha * kd_cls, 'kd_box': self.beta * kd_box}


def check_compatible(teacher: SSD, student: nn.Module) -> None:
    """Refuse a teacher/student pair whose anchors or class counts differ.

    Raises:
        CompressionError: different anchors (input size or grids) or number of classes.
    """
    classes = (teacher.head.classification_head.num_columns,
               student.head.classification_head.num_columns)
    if classes[0] != classes[1]:
        raise CompressionError(f'teacher has {classes[0]} classes (with background), the '
                               f'student {classes[1]}')
    if not torch.equal(model_anchors(teacher), model_anchors(student)):
        raise CompressionError('teacher and student anchors differ')
