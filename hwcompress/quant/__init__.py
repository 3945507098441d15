"""Quantization with Brevitas: per-layer bit-widths, QAT, deployable QCDQ ONNX export.

Importing this package does not import Brevitas; its functions do.
"""
