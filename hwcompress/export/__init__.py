"""Exporting models to ONNX (fp32 now; quantized QCDQ with the quantization stage)."""

from hwcompress.export.onnx import export_fp32

__all__ = ["export_fp32"]
