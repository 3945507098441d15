"""Search, quantize and export a student for an MCU (STM32H7: weights in flash, int8/int4).

    python examples/mcu_quantize.py --out runs/mcu
    python examples/mcu_quantize.py --tiny --out /tmp/mcu

The MCU cannot run onnxruntime, so its latency comes from the profile's roofline. The third
stage picks 8 or 4 bits per layer; the product is exported as QCDQ ONNX, checked to run
integer kernels and to agree with PyTorch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hwcompress.data import DataConfig, load_data
from hwcompress.export.student import export_student, load_student
from hwcompress.search import SearchConfig, run_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/mcu")
    parser.add_argument("--tiny", action="store_true", help="tiny settings (tests)")
    args = parser.parse_args()
    size = (
        dict(episodes=1, rollouts=2, distill_epochs=1, train_limit=300, final_epochs=0)
        if args.tiny
        else dict(episodes=6, rollouts=4)
    )
    result = run_search(
        SearchConfig(
            profile="stm32h7",
            stages=("removal", "shrinkage", "quantization"),
            out=args.out,
            **size,
        )
    )
    assert result.best is not None, "no candidate could be evaluated; see results.json"
    print(f"bits per layer: {result.best.genome['weight_bits']}")
    student = load_student(args.out)  # the run folder's best/student.pt
    data = load_data(DataConfig(name=student.meta.get("dataset", "digits")))
    report = export_student(student, "qcdq", Path(args.out) / "mcu.onnx", data)
    print(
        f"exported {report.path}: {report.weight_bytes} weight bytes, integer kernels "
        f"{report.integer_kernels}, top-1 parity {report.parity:.2%}"
    )


if __name__ == "__main__":
    main()
