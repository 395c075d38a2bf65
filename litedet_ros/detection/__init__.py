"""Lightweight object detection: MobileNet-SSD models, backends, export, INT8 and evaluation."""
