"""Transfer a policy from a small teacher to a larger one (N2N's transfer result).

    python examples/policy_transfer.py --out runs/transfer
    python examples/policy_transfer.py --tiny --out /tmp/transfer

Searches the built-in VGG, then starts the search of the built-in ResNet from the VGG run's
final policies (``policies/final.pt``) instead of from scratch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hwcompress.search import SearchConfig, run_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/transfer")
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
    out = Path(args.out)
    small = run_search(
        SearchConfig(profile="x86_host", teacher="builtin:vgg", out=str(out / "vgg"), **size)
    )
    policy = small.out / "policies" / "final.pt"
    large = run_search(
        SearchConfig(
            profile="x86_host",
            teacher="builtin:resnet",
            init_policy=str(policy),
            out=str(out / "resnet"),
            **size,
        )
    )
    for name, result in (("vgg", small), ("resnet (from the vgg policy)", large)):
        best = result.best
        print(f"{name}: best reward {best.reward:.4f}" if best else f"{name}: nothing evaluated")


if __name__ == "__main__":
    main()
