"""Compress the built-in VGG teacher for a Jetson Nano (N2N: removal, then shrinkage).

    python examples/jetson_nano.py --out runs/nano            # a few minutes on 2 cores
    python examples/jetson_nano.py --tiny --out /tmp/nano     # seconds (what the tests run)

The teacher is trained on the built-in digits data on first use and cached. The Jetson Nano
profile has no int8 kernels, so the product is a float student; the run folder holds
``best/student.onnx``, ``results.json`` and ``report/index.html``.
"""

from __future__ import annotations

import argparse

from hwcompress.search import SearchConfig, run_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/jetson_nano")
    parser.add_argument("--tiny", action="store_true", help="tiny settings (tests)")
    args = parser.parse_args()
    size = (
        dict(
            episodes=1,
            rollouts=2,
            distill_epochs=1,
            train_limit=300,
            latency_runs=5,
            final_epochs=0,
            seed_ratios=(8.0,),
        )
        if args.tiny
        else dict(episodes=6, rollouts=4)
    )
    result = run_search(SearchConfig(profile="jetson_nano", out=args.out, **size))
    best = result.best
    assert best is not None, "no candidate could be evaluated; see results.json"
    print(
        f"best student: {best.metrics['compression']:.1f}× fewer parameters, "
        f"{best.metrics['val_accuracy']:.2%} validation accuracy "
        f"(teacher {result.teacher['val_accuracy']:.2%}); report: {args.out}/report/index.html"
    )


if __name__ == "__main__":
    main()
