"""fp32 student vs int8 vs the bit-width agent's mixed precision, measured in one run.

1. Distil a float student from the built-in VGG teacher (structure fixed by ``--width``).
2. int8: every conv/linear at 8-bit weights and activations, QAT by distillation, QCDQ export.
3. mixed: the quantization stage of ``hwcompress search`` (the LSTM bit-width agent, REINFORCE,
   reward on weight bytes at the chosen bits) started from the same float student.

Accuracy is measured by running the exported ONNX files in onnxruntime on the test split;
weight bytes are counted from the ONNX files (sub-8-bit weights at their true bits); latency is
onnxruntime's, measured for the three files in turn, three rounds, median of medians.
Writes ``benchmarks/results/quantization_DATASET.md``.

Usage: python benchmarks/quantization.py [--dataset fashion_mnist] [--episodes 4] [--rollouts 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import resolve_teacher, save_checkpoint
from hwcompress.export import export_fp32
from hwcompress.hardware import load_profile
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.sources import measure_latency
from hwcompress.quant.convert import calibrate, quantize_model
from hwcompress.quant.export import check_parity, export_qcdq, onnx_accuracy
from hwcompress.search import SearchConfig, run_search
from hwcompress.train import DistillConfig, TeacherLogits, TrainConfig, distill

RESULTS = Path(__file__).parent / "results"
#: The teacher training settings of benchmarks/distillation.py (same cache entry).
TEACHER_TRAINING = {
    "digits": TrainConfig(epochs=30),
    "fashion_mnist": TrainConfig(epochs=12, patience=4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument(
        "--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR", "../shared/datasets")
    )
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--width", type=float, default=0.5, help="width of the float student")
    parser.add_argument("--distill-epochs", type=int, default=8)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--qat-train-limit", type=int, default=20000)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-quantization"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = args.work / args.dataset
    work.mkdir(parents=True, exist_ok=True)
    profile = load_profile(args.profile)

    data = load_data(DataConfig(name=args.dataset, data_dir=args.data_dir, batch_size=128))
    teacher = resolve_teacher(
        "builtin:vgg", data, train_config=TEACHER_TRAINING[args.dataset], reporter=print
    ).model
    teacher_path = save_checkpoint(teacher, work / "teacher.pt", {"spec": "builtin:vgg"})
    logits = TeacherLogits(teacher, data.train)

    # 1. the float student
    spec = build_spec(teacher, data.input_shape)
    genome = Genome(width={g.key: args.width for g in spec.shrinkable})
    student = build_student(teacher, genome, data.input_shape, spec=spec)
    t0 = time.perf_counter()
    distill(
        student,
        teacher,
        data,
        DistillConfig(epochs=args.distill_epochs, patience=3),
        teacher_logits=logits,
    )
    print(f"float student distilled in {time.perf_counter() - t0:.0f} s", flush=True)
    fp32_path = export_fp32(student, data.input_shape, work / "fp32.onnx")
    student_ckpt = save_checkpoint(
        student,
        work / "student.pt",
        {
            "genome": genome.to_dict(),
            "teacher": "builtin:vgg",
            "dataset": args.dataset,
            "data_dir": args.data_dir,
            "seed": 0,
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
            "quantized": False,
        },
    )

    # 2. uniform int8 with QAT on the same training subset the agent gets
    qat_data = load_data(
        DataConfig(
            name=args.dataset,
            data_dir=args.data_dir,
            batch_size=128,
            train_limit=args.qat_train_limit,
        )
    )
    t0 = time.perf_counter()
    q8 = calibrate(quantize_model(student), qat_data.train)
    distill(q8, teacher, qat_data, DistillConfig(epochs=args.qat_epochs, patience=3))
    int8_path = export_qcdq(q8, data.input_shape, work / "int8.onnx")
    int8_parity = check_parity(q8, int8_path, data.val)
    print(f"int8 QAT + export in {time.perf_counter() - t0:.0f} s", flush=True)

    # 3. the bit-width agent
    run_dir = work / "agent"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    result = run_search(
        SearchConfig(
            profile=args.profile,
            teacher="builtin:vgg",
            teacher_weights=str(teacher_path),
            dataset=args.dataset,
            data_dir=args.data_dir,
            stages=("quantization",),
            student=str(student_ckpt),
            episodes=args.episodes,
            rollouts=args.rollouts,
            distill_epochs=args.qat_epochs,
            train_limit=args.qat_train_limit,
            out=str(run_dir),
        )
    )
    agent_s = time.perf_counter() - t0
    best = result.best
    assert best is not None, "the agent found no student"
    mixed_path = run_dir / "best" / "student.onnx"
    print(f"agent: {len(result.candidates)} candidates in {agent_s:.0f} s", flush=True)

    # measurements, all in this process
    variants = {
        "fp32 student": (fp32_path, "32"),
        "int8 (QAT)": (int8_path, "8"),
        "mixed (agent)": (
            mixed_path,
            "/".join(str(b) for b in best.genome["weight_bits"].values()),
        ),
    }
    lat: dict[str, list[float]] = {k: [] for k in variants}
    kernels: dict[str, dict[str, int]] = {}
    for _ in range(3):
        for name, (path, _bits) in variants.items():
            r = measure_latency(path, profile)
            lat[name].append(r.median_ms)
            kernels[name] = {**r.integer_kernels, **r.float_compute_kernels}
    rows = []
    fp32_bytes = analyze_onnx(fp32_path).weight_bytes
    fp32_ms = statistics.median(lat["fp32 student"])
    fp32_test = onnx_accuracy(fp32_path, data.test)
    for name, (path, bits) in variants.items():
        wb = analyze_onnx(path).weight_bytes
        test = onnx_accuracy(path, data.test)
        val = onnx_accuracy(path, data.val)
        ms = statistics.median(lat[name])
        rows.append(
            f"| {name} | {bits} | {val:.2%} | {test:.2%} | {100 * (test - fp32_test):+.2f} "
            f"| {wb:,} | {fp32_bytes / wb:.2f}× | {ms:.4f} | {fp32_ms / ms:.2f}× "
            f"| {', '.join(f'{k}×{n}' for k, n in kernels[name].items())} |"
        )
    params = sum(p.numel() for p in student.parameters())
    int8_ms = statistics.median(lat["int8 (QAT)"])
    mixed_test = onnx_accuracy(mixed_path, data.test)
    mixed_bytes = analyze_onnx(mixed_path).weight_bytes
    verdicts = [
        f"- Agent vs fp32: {fp32_bytes / mixed_bytes:.2f}× fewer weight bytes (target ≥ 4×) at "
        f"{100 * (fp32_test - mixed_test):.2f} points test loss (target ≤ 0.5): "
        + (
            "**met**."
            if fp32_bytes / mixed_bytes >= 4 and fp32_test - mixed_test <= 0.005
            else "**not met**."
        ),
        f"- int8 in onnxruntime: {int8_ms:.4f} ms vs fp32 {fp32_ms:.4f} ms — "
        + (
            "not slower."
            if int8_ms <= fp32_ms
            else f"**{int8_ms / fp32_ms:.2f}× slower than fp32** on this machine (quantize/"
            "dequantize and integer-kernel overheads outweigh the arithmetic saved at these "
            "layer sizes)."
        ),
    ]
    lines = [
        f"# Quantization on {args.dataset}: fp32 student vs int8 vs the agent's mixed precision",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} torch "
        f"thread(s), CPU only; latency from onnxruntime with profile `{args.profile}` "
        f"({profile.runtime.providers[0]}, {profile.runtime.threads} thread(s)).",
        f"Float student: built-in VGG at width ×{args.width} ({params:,} parameters), "
        f"distilled {args.distill_epochs} epochs. QAT: {args.qat_epochs} epoch(s) on "
        f"{args.qat_train_limit:,} training samples for int8 and for every agent candidate. "
        f"Agent: {args.episodes} episodes × {args.rollouts} rollouts "
        f"({len(result.candidates)} candidates, {agent_s / 60:.1f} min). int8 parity with "
        f"PyTorch: {int8_parity:.2%}. Total wall time {(time.perf_counter() - started) / 60:.1f} "
        "min.",
        "",
        "| variant | weight bits (per layer) | val acc (ORT) | test acc (ORT) | Δ test vs fp32 "
        "(points) | weight bytes | fewer than fp32 | latency ms (median) | speed-up | "
        "conv/matmul kernels |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        *verdicts,
        "",
        "Agent's candidates (bits per layer → val acc, weight bytes, reward):",
        "",
        *(
            f"- {'/'.join(str(b) for b in c.genome['weight_bits'].values())}: "
            f"{c.metrics.get('val_accuracy', 0):.2%}, {c.metrics.get('weight_bytes', 0):,.0f} B, "
            f"{c.reward:+.4f}"
            for c in result.candidates
            if c.status == "ok"
        ),
        "",
    ]
    out = RESULTS / f"quantization_{args.dataset}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    (work / "latencies.json").write_text(json.dumps(lat, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
