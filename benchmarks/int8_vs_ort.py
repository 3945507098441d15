"""hwcompress int8 export vs onnxruntime's own ``quantize_static``, measured side by side.

For each model: the float model as fp32 ONNX; onnxruntime's ``quantize_static`` of that file
(QDQ, per-channel s8 weights, u8 activations, MinMax calibration on the same images, after
``quant_pre_process``); hwcompress post-training int8 (``quantize_model`` + ``calibrate`` +
``export_qcdq``) on the same calibration images; hwcompress QAT (the same, then distilled from
the float model). Every file is run in onnxruntime (CPU, 1 thread, all optimisations):
test accuracy, weight bytes, integer kernels and the ``DequantizeLinear`` nodes left in the
optimised graph, top-1 agreement between optimisations off (the Q/DQ reference) and on (fused
integer kernels), and latency — the four sessions timed in turn (A, B, C, D, A, …) and
reported as ratios to fp32.

Models: (a) a search product's student (``--student RUN/best/student.pt``; without it, a
uniformly narrowed VGG distilled from the built-in Fashion-MNIST teacher), (b) torchvision
ResNet-18 and (c) MobileNetV2 at 1×3×64×64, trained briefly on Fashion-MNIST upsampled to
64×64 with the grey channel repeated.

Usage: python benchmarks/int8_vs_ort.py [--models vgg_student,resnet18,mobilenet_v2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from hwcompress.data import DataConfig, load_data
from hwcompress.data.datasets import DataBundle
from hwcompress.data.teachers import resolve_teacher
from hwcompress.export import export_fp32
from hwcompress.measure.latency import interleaved_latency
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.ort_graph import dequantize_left, kernel_counts, optimized_graph
from hwcompress.quant.convert import calibrate, quantize_model
from hwcompress.quant.export import export_qcdq, onnx_accuracy, optimisation_agreement, parity
from hwcompress.quant.qat import quantization_aware_training
from hwcompress.train import DistillConfig, TrainConfig, distill, train_classifier

RESULTS = Path(__file__).parent / "results"
INTEGER = (
    "QLinearConv",
    "QGemm",
    "QLinearMatMul",
    "MatMulIntegerToFloat",
    "QLinearAdd",
    "QLinearConcat",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "QLinearMul",
)


def upsampled(data: DataBundle, size: int, limits: tuple[int, int, int]) -> DataBundle:
    """The same data at ``size``×``size`` with three channels, each split cut to its limit."""

    def convert(loader: DataLoader, limit: int, shuffle: bool) -> DataLoader:
        ds = loader.dataset
        assert isinstance(ds, TensorDataset)
        x, y = ds.tensors[0][:limit], ds.tensors[1][:limit]
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = x.expand(-1, 3, -1, -1).contiguous()
        return DataLoader(TensorDataset(x, y), batch_size=loader.batch_size, shuffle=shuffle)

    return replace(
        data,
        train=convert(data.train, limits[0], True),
        val=convert(data.val, limits[1], False),
        test=convert(data.test, limits[2], False),
        in_channels=3,
        image_shape=(3, size, size),
    )


def calibration_batches(data: DataBundle, images: int, batch: int = 64) -> list[tuple]:
    """The first ``images`` training images in fixed batches (the same for every contender)."""
    ds = data.train.dataset
    assert isinstance(ds, TensorDataset)
    x = ds.tensors[0][:images]
    return [(x[i : i + batch],) for i in range(0, len(x), batch)]


def ort_quantize_static(fp32: Path, out: Path, calib: list[tuple]) -> Path:
    """onnxruntime's own static quantization: QDQ, per-channel, u8 activations, s8 weights."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": b[0].numpy()} for b in calib])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.it, None)

    pre = out.with_name(out.stem + "-pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def graph_facts(path: Path) -> dict[str, Any]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    graph = optimized_graph(so, path, "CPUExecutionProvider")
    kernels = kernel_counts(graph)
    return {
        "integer_kernels": sum(n for k, n in kernels.items() if k.split(":")[-1] in INTEGER),
        "float_kernels": sum(
            n
            for k, n in kernels.items()
            if k.split(":")[-1] in ("Conv", "FusedConv", "Gemm", "MatMul", "FusedGemm")
        ),
        "dequantize_left": dequantize_left(graph),
        "kernels": kernels,
    }


def build_model(name: str, args: argparse.Namespace) -> tuple[torch.nn.Module, DataBundle, str]:
    """A trained float model, its data and a description."""
    base = load_data(DataConfig(name="fashion_mnist", data_dir=args.data_dir, batch_size=128))
    if name == "vgg_student":
        if args.student:
            from hwcompress.export.student import load_student

            loaded = load_student(args.student)
            metrics = loaded.meta.get("metrics", {})
            return (
                loaded.model.eval(),
                base,
                (
                    f"the product of a Fashion-MNIST search (`{loaded.meta.get('teacher')}` "
                    f"teacher): {metrics.get('params', 0):,} params, "
                    f"{metrics.get('compression', 0):.1f}× fewer than the teacher, "
                    f"{'×'.join(map(str, loaded.input_shape))}"
                ),
            )
        teacher = resolve_teacher(
            "builtin:vgg", base, train_config=TrainConfig(epochs=12, patience=4), reporter=print
        ).model
        from hwcompress.arch import Genome, build_spec, build_student

        spec = build_spec(teacher, base.input_shape)
        genome = Genome(width={g.key: args.width for g in spec.shrinkable})
        student = build_student(teacher, genome, base.input_shape, spec=spec)
        distill(student, teacher, base, DistillConfig(epochs=args.distill_epochs, patience=3))
        return (
            student.eval(),
            base,
            (
                f"built-in VGG (test-trained teacher) at width ×{args.width}, distilled "
                f"{args.distill_epochs} epochs, 1×1×28×28"
            ),
        )
    import torchvision

    data = upsampled(base, 64, (args.tv_train, 1000, args.tv_test))
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    train_classifier(model, data, TrainConfig(epochs=args.tv_epochs, patience=2, lr=1e-3))
    return (
        model.eval(),
        data,
        (
            f"torchvision {name} (random init), trained {args.tv_epochs} epoch(s) on "
            f"{args.tv_train} Fashion-MNIST images upsampled to 1×3×64×64"
        ),
    )


def deep_parity(args: argparse.Namespace) -> dict[str, Any]:
    """ResNet-50 at 32×32, random weights with batch-norm statistics re-estimated on real
    images (no training on 2 cores), exported by hwcompress PTQ: does onnxruntime with fused
    integer kernels agree with its own Q/DQ reference and with PyTorch?"""
    import torchvision

    base = load_data(DataConfig(name="fashion_mnist", data_dir=args.data_dir, batch_size=64))
    data = upsampled(base, 32, (args.calibration, 10, 1000))
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=10)
    model.train()
    with torch.no_grad():
        for x, *_ in data.train:
            model(x)
    model.eval()
    calib = calibration_batches(data, args.calibration)
    q = calibrate(quantize_model(model), calib, max_batches=len(calib))
    path = export_qcdq(q, data.input_shape, Path(tempfile.mkdtemp()) / "resnet50.onnx")
    facts = graph_facts(path)
    return {
        "opt_agreement": optimisation_agreement(path, data.test),
        "pytorch_parity": parity(q, path, data.test),
        "integer_kernels": facts["integer_kernels"],
        "dequantize_left": facts["dequantize_left"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR", "../shared/datasets")
    )
    parser.add_argument("--models", default="vgg_student,resnet18,mobilenet_v2")
    parser.add_argument("--student", default=None, help="a search product's student.pt")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--distill-epochs", type=int, default=4)
    parser.add_argument("--tv-train", type=int, default=6000)
    parser.add_argument("--tv-test", type=int, default=2000)
    parser.add_argument("--tv-epochs", type=int, default=1)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--qat-limit", type=int, default=4000)
    parser.add_argument("--calibration", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "int8_vs_ort.md")
    parser.add_argument("--no-resnet50-parity", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    deep = None if args.no_resnet50_parity else deep_parity(args)
    print(f"resnet50 parity: {deep}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="int8-vs-ort-"))
    results: list[dict[str, Any]] = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        model, data, desc = build_model(name, args)
        if name == "vgg_student" and args.student:
            name = "search_product"
        print(f"{name}: float model ready in {time.perf_counter() - t0:.0f} s", flush=True)
        shape = data.input_shape
        calib = calibration_batches(data, args.calibration)
        paths = {"fp32": export_fp32(model, shape, work / f"{name}-fp32.onnx")}
        paths["onnxruntime quantize_static"] = ort_quantize_static(
            paths["fp32"], work / f"{name}-ort.onnx", calib
        )
        ptq = calibrate(quantize_model(model), calib, max_batches=len(calib))
        paths["hwcompress int8 (PTQ)"] = export_qcdq(ptq, shape, work / f"{name}-ptq.onnx")
        qat = calibrate(quantize_model(model), calib, max_batches=len(calib))
        ds = data.train.dataset
        assert isinstance(ds, TensorDataset)
        qat_data = replace(
            data,
            train=DataLoader(
                TensorDataset(*(t[: args.qat_limit] for t in ds.tensors)),
                batch_size=data.train.batch_size,
                shuffle=True,
            ),
        )
        t0 = time.perf_counter()
        quantization_aware_training(
            qat, model, qat_data, DistillConfig(epochs=args.qat_epochs, patience=2)
        )
        print(f"{name}: QAT in {time.perf_counter() - t0:.0f} s", flush=True)
        paths["hwcompress int8 (QAT)"] = export_qcdq(qat, shape, work / f"{name}-qat.onnx")
        lat = interleaved_latency(paths, shape, rounds=args.rounds, runs=args.runs)
        torch_models = {"hwcompress int8 (PTQ)": ptq, "hwcompress int8 (QAT)": qat}
        for label, path in paths.items():
            facts = graph_facts(path)
            row = {
                "model": name,
                "description": desc,
                "contender": label,
                "test": onnx_accuracy(path, data.test),
                "weight_bytes": analyze_onnx(path).weight_bytes,
                "latency_ms": lat[label],
                "ratio": lat["fp32"] / lat[label],
                **facts,
            }
            if label != "fp32":
                row["opt_agreement"] = optimisation_agreement(path, data.test)
            if label in torch_models:
                row["pytorch_parity"] = parity(torch_models[label], path, data.test)
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "kernels"}), flush=True)
        write(args.out, results, args, time.perf_counter() - started, deep)


def write(
    out: Path,
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    wall: float,
    deep: dict[str, Any] | None,
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# int8: hwcompress export vs onnxruntime `quantize_static`, side by side",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only, onnxruntime "
        "CPUExecutionProvider, 1 intra-op thread; latency interleaved (every contender of a "
        f"model timed in turn, {args.rounds} rounds × {args.runs} runs, median), as speed-up "
        "over fp32 (higher is faster). Calibration: the same "
        f"{args.calibration} training images for onnxruntime and hwcompress. QAT: "
        f"{args.qat_epochs} epoch(s) of distillation from the float model on "
        f"{args.qat_limit} training images (hwcompress' QAT recipe: a tenth of the "
        "distillation learning rate, the calibrated model kept if no epoch beats it). "
        f"Total wall time {wall / 60:.1f} min.",
        "",
    ]
    for model in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == model]
        fp32 = group[0]
        lines += [
            f"## {model}",
            "",
            group[0]["description"] + ".",
            "",
            "| contender | test acc (ORT) | Δ vs fp32 (points) | weight bytes | integer kernels "
            "| float conv/gemm | DQ left | opt on/off agree | PyTorch parity | latency ms "
            "| speed-up vs fp32 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in group:
            agree = f"{r['opt_agreement']:.2%}" if "opt_agreement" in r else "—"
            par = f"{r['pytorch_parity']:.2%}" if "pytorch_parity" in r else "—"
            lines.append(
                f"| {r['contender']} | {r['test']:.2%} | {100 * (r['test'] - fp32['test']):+.2f} "
                f"| {r['weight_bytes']:,} | {r['integer_kernels']} | {r['float_kernels']} "
                f"| {r['dequantize_left']} | {agree} | {par} | {r['latency_ms']:.4f} "
                f"| {r['ratio']:.2f}× |"
            )
        lines.append("")
    if deep is not None:
        lines += [
            "## Parity on a deep residual net",
            "",
            "torchvision ResNet-50 at 1×3×32×32, random weights, batch-norm statistics "
            f"re-estimated on {args.calibration} Fashion-MNIST images, hwcompress int8 (PTQ), "
            f"1000 test images: onnxruntime optimisations off vs on agree on "
            f"**{deep['opt_agreement']:.2%}**, onnxruntime vs PyTorch (near-ties excepted) on "
            f"**{deep['pytorch_parity']:.2%}**; {deep['integer_kernels']} integer kernels, "
            f"{deep['dequantize_left']} DequantizeLinear left in the optimised graph.",
            "",
        ]
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
