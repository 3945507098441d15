"""What the project knows about ONNX op types, in one place.

Counting (:mod:`hwcompress.measure.onnx_graph`), the layer cut (:mod:`.layers`), the kernel
features of the latency fit (:mod:`.kernels`) and the kernel report of a measurement
(:mod:`.ort_graph`) all read these tables, so an op added here is known to all of them.
"""

from __future__ import annotations

__all__ = [
    "ADD_OPS",
    "ALIAS_OPS",
    "BIAS_INPUT",
    "CONV_OPS",
    "FLOAT_COMPUTE_KERNELS",
    "INTEGER_KERNELS",
    "MATMUL_OPS",
    "PASS_THROUGH",
    "POOL_OPS",
    "QPARAM_INPUTS",
    "WEIGHT_INPUT",
]

#: Ops whose output reuses an input buffer.
ALIAS_OPS = frozenset(
    {
        "Flatten",
        "Reshape",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Dropout",
        "Relu",
        "Clip",
        "LeakyRelu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Tanh",
        "BatchNormalization",
        "QuantizeLinear",
        "DequantizeLinear",
    }
)
#: Initializer inputs that are quantization parameters, not weights: (op, input index).
QPARAM_INPUTS = {
    ("QuantizeLinear", 1),
    ("QuantizeLinear", 2),
    ("DequantizeLinear", 1),
    ("DequantizeLinear", 2),
    ("Reshape", 1),
    ("Clip", 1),
    ("Clip", 2),
}
#: Ops a following batch-norm folds into, with the index of their bias input (-1: none).
BIAS_INPUT = {"Conv": 2, "ConvInteger": -1, "QLinearConv": 8, "Gemm": 2, "MatMul": -1}
#: Where each weighted op's weight is among its inputs (the exported graph's ops and the
#: fused ones onnxruntime's optimiser writes).
WEIGHT_INPUT = {
    "Conv": 1,
    "ConvInteger": 1,
    "QLinearConv": 3,
    "Gemm": 1,
    "MatMul": 1,
    "MatMulInteger": 1,
    "QLinearMatMul": 3,
    "QGemm": 3,
    "FusedConv": 1,
    "FusedGemm": 1,
    "FusedMatMul": 1,
}
#: Ops a weight or an activation passes through unchanged in width on its way to a kernel.
PASS_THROUGH = frozenset({"Clip", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze"})
#: Convolutions, as exported and as onnxruntime's optimiser rewrites them.
CONV_OPS = frozenset({"Conv", "FusedConv", "QLinearConv", "ConvInteger"})
#: Matrix products, as exported and as onnxruntime's optimiser rewrites them.
MATMUL_OPS = frozenset(
    {"Gemm", "MatMul", "FusedGemm", "FusedMatMul", "QLinearMatMul", "QGemm", "MatMulInteger"}
)
#: Pooling ops.
POOL_OPS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"})
#: Element-wise ops of two activations.
ADD_OPS = frozenset({"Add", "Sum", "Mul"})
#: onnxruntime kernels that compute in integer arithmetic.
INTEGER_KERNELS = frozenset(
    {
        "QLinearConv",
        "ConvInteger",
        "MatMulInteger",
        "QLinearMatMul",
        "QGemm",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QLinearAdd",
        "QLinearMul",
        "QLinearGlobalAveragePool",
        "QLinearAveragePool",
        "QLinearConcat",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
    }
)
#: Float kernels that do the heavy arithmetic.
FLOAT_COMPUTE_KERNELS = frozenset(
    {"Conv", "FusedConv", "Gemm", "MatMul", "FusedGemm", "FusedMatMul"}
)
