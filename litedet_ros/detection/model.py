"""MobileNetV2-SSDLite 320x320 assembled from torchvision's detection parts.

The network follows section 6.2 of the MobileNetV2 paper: the first SSDLite feature map is the
expansion layer of the first stride-32 inverted residual (stride 16), the second is the last
backbone layer (stride 32), and four ``_extra_block`` layers halve the resolution down to 1x1.
torchvision's :class:`~torchvision.models.detection.ssdlite.SSDLiteFeatureExtractorMobileNet`
only understands MobileNetV3 blocks (``.block``), so the small extractor below does the same for
MobileNetV2 blocks (``.conv``) and reuses torchvision's extra blocks and initialisation.

For deployment only :class:`RawSSD` (backbone + head) is exported; anchors, box decoding and NMS
run outside the graph (:mod:`litedet_ros.detection.postprocess`).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import Tensor, nn
from torchvision.models import mobilenet_v2
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import SSDLiteHead, _extra_block, _normal_init

INPUT_SIZE = 320
# Default-box scales as fractions of the input side (torchvision's SSDLite: 0.2-0.95). Parts in
# the workcell's bin are 35-110 px in a 640x480 image, i.e. 18-70 px in the 320x320 input, so
# the range is shifted down to 0.1-0.6 (32-192 px) to give every part well-overlapping anchors.
ANCHOR_SCALES = (0.1, 0.6)
# Stride-2 inverted residual whose 1x1 expansion gives the stride-16 feature map (576 channels).
_C4_POS = 14


class MobileNetV2SSDLiteFeatures(nn.Module):
    """MobileNetV2 features plus SSDLite extra layers: six maps at strides 16 to 320.

    Args:
        width_mult: MobileNetV2 channel multiplier (1.0 is the standard network).
        norm_layer: normalisation layer factory used everywhere.
    """

    def __init__(self, width_mult: float, norm_layer) -> None:
        super().__init__()
        features = mobilenet_v2(
            weights=None, width_mult=width_mult, norm_layer=norm_layer).features
        _normal_init(features)
        c4 = features[_C4_POS]
        self.features = nn.Sequential(
            nn.Sequential(*features[:_C4_POS], c4.conv[0]),
            nn.Sequential(*c4.conv[1:], *features[_C4_POS + 1:]),
        )
        last = features[-1].out_channels

        def depth(d: int) -> int:
            return max(16, int(d * width_mult))

        self.extra = nn.ModuleList([
            _extra_block(last, depth(512), norm_layer),
            _extra_block(depth(512), depth(256), norm_layer),
            _extra_block(depth(256), depth(256), norm_layer),
            _extra_block(depth(256), depth(128), norm_layer),
        ])
        _normal_init(self.extra)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Return the six feature maps, ``float[B, C_i, H_i, W_i]``, keyed '0'..'5'."""
        outputs = []
        for block in self.features:
            x = block(x)
            outputs.append(x)
        for block in self.extra:
            x = block(x)
            outputs.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(outputs))


def ssdlite320_mobilenet_v2(num_classes: int, width_mult: float = 1.0) -> SSD:
    """Build an untrained MobileNetV2-SSDLite for ``INPUT_SIZE`` x ``INPUT_SIZE`` inputs.

    The returned torchvision :class:`SSD` expects RGB images in ``[0, 1]`` that are already
    resized to the input size by :func:`litedet_ros.detection.preprocess.resize_rgb` (its own
    transform then only normalises to ``[-1, 1]``), so training and every backend see the same
    pixels.

    Args:
        num_classes: object classes including background (K + 1).
        width_mult: MobileNetV2 channel multiplier.

    Returns:
        The SSD model (training mode), anchors: 6 per location on 20, 10, 5, 3, 2, 1 grids
        (3234 in all), scales :data:`ANCHOR_SCALES`.
    """
    if num_classes < 2:
        raise ValueError(f'num_classes must count background plus >= 1 class, got {num_classes}')
    norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    backbone = MobileNetV2SSDLiteFeatures(width_mult, norm_layer)
    size = (INPUT_SIZE, INPUT_SIZE)
    anchor_generator = DefaultBoxGenerator(
        [[2, 3]] * 6, min_ratio=ANCHOR_SCALES[0], max_ratio=ANCHOR_SCALES[1])
    out_channels = det_utils.retrieve_out_channels(backbone, size)
    head = SSDLiteHead(
        out_channels, anchor_generator.num_anchors_per_location(), num_classes, norm_layer)
    return SSD(
        backbone, anchor_generator, size, num_classes, head=head,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        score_thresh=0.001, nms_thresh=0.55, detections_per_img=300, topk_candidates=300)


class RawSSD(nn.Module):
    """Backbone + head of an SSD without anchors, decoding or NMS: the exported graph.

    Input: ``float32[B, 3, S, S]`` normalised images from
    :func:`litedet_ros.detection.preprocess.preprocess`. Outputs: ``regressions`` ``float32[B, A,
    4]`` (box offsets, BoxCoder weights 10, 10, 5, 5) and ``logits`` ``float32[B, A, K + 1]``
    (class 0 = background).
    """

    def __init__(self, ssd: SSD) -> None:
        super().__init__()
        self.backbone = ssd.backbone
        self.head = ssd.head

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Run backbone and head; see the class docstring for shapes."""
        out = self.head(list(self.backbone(images).values()))
        return out['bbox_regression'], out['cls_logits']


def model_anchors(ssd: SSD) -> Tensor:
    """Return the model's default boxes, ``float32[A, 4]`` (x1, y1, x2, y2) in input pixels."""
    size = INPUT_SIZE
    images = torch.zeros(1, 3, size, size)
    training = ssd.backbone.training
    ssd.backbone.eval()  # only feature-map shapes matter; keep batch-norm statistics untouched
    with torch.no_grad():
        features = list(ssd.backbone(images).values())
    ssd.backbone.train(training)
    return ssd.anchor_generator(ImageList(images, [(size, size)]), features)[0].float()
