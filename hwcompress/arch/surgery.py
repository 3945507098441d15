"""Building a student from a teacher and a genome, with weights inherited from the teacher.

Stage 1 removes units (residual branches, or convs whose consumers then read the removed
conv's input, their input channels adapted from the teacher's weights). Stage 2 shrinks
channel groups: every layer writing or reading a group keeps the same channels, chosen by the
summed L1 norm of the producers' filters. The result is a real smaller network (a
``torch.fx.GraphModule``), not a masked one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx
from torch import nn

from hwcompress.arch.analysis import build_spec
from hwcompress.arch.genome import Genome
from hwcompress.arch.graph import analyze_graph, trace_model
from hwcompress.arch.graph_types import GraphAnalysis, LayerInfo
from hwcompress.arch.spec import ArchSpec
from hwcompress.errors import GenomeError, ModelError


def build_student(
    teacher: nn.Module, genome: Genome, input_shape: Sequence[int], *, spec: ArchSpec | None = None
) -> torch.fx.GraphModule:
    """Builds the student that ``genome`` describes.

    Args:
        teacher: The teacher (not modified).
        genome: Units to remove and width factors per channel group.
        input_shape: Shape of one input batch.
        spec: The teacher's spec, if already built (saves a trace).

    Returns:
        A new module in eval mode; with an empty genome it computes exactly what the teacher
        computes.

    Raises:
        GenomeError: If the genome names unknown decision points or cannot be built.
    """
    spec = spec or build_spec(teacher, input_shape)
    spec.validate(genome)
    gm = trace_model(teacher)
    removed = [u.name for u in spec.units if not genome.keep.get(u.name, True)]
    try:
        for name in removed:
            analysis = analyze_graph(gm, input_shape)
            if name not in analysis.units:
                raise GenomeError(
                    f"unit '{name}' cannot be removed once the other removals are applied"
                )
            _remove_unit(analysis, name)
        if any(w != 1.0 for w in genome.width.values()):
            analysis = analyze_graph(gm, input_shape)
            for key, width in genome.width.items():
                root = next(
                    (r for r, k in analysis.keys.items() if k == key and r == analysis.root(r)),
                    None,
                )
                if root is None or width == 1.0:
                    continue  # the group went away with a removed unit
                keep = max(1, round(width * analysis.channels[root]))
                _shrink_group(analysis, root, keep)
        if genome.kernel:
            _crop(gm, genome, removed, spec)
        gm.recompile()
        with torch.no_grad():
            gm.eval()(torch.zeros(tuple(input_shape)))
    except ModelError as err:
        raise GenomeError(f"the genome cannot be built: {err}") from err
    except RuntimeError as err:
        raise GenomeError(f"the student does not run: {err}") from err
    return gm.eval()


def _crop(gm: torch.fx.GraphModule, genome: Genome, removed: list[str], spec: ArchSpec) -> None:
    """Crops the kernels ``genome.kernel`` names (those of removed units are gone)."""
    from hwcompress.prune.kernel import crop_kernels

    gone = {layer for u in spec.units if u.name in removed for layer in u.layers}
    sizes = {n: (int(s[0]), int(s[-1])) for n, s in genome.kernel.items() if n not in gone}
    try:
        crop_kernels(gm, sizes)
    except ValueError as err:
        raise GenomeError(f"the kernels cannot be cropped: {err}") from err


def _remove_unit(a: GraphAnalysis, name: str) -> None:
    unit = a.units[name]
    gm = a.gm
    assert unit.output is not None and unit.replacement is not None
    if unit.kind == "conv":
        in_ch = a.channels[a.root(unit.in_gid)]
        out_root = a.root(unit.out_gid)
        consumers = [
            li
            for li in a.layers.values()
            if a.root(li.in_gid) == out_root and li.name not in unit.layers
        ]
        for li in consumers:
            _adapt_input(li, in_ch)
    unit.output.replace_all_uses_with(unit.replacement)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()


def _adapt_input(li: LayerInfo, new_in: int) -> None:
    """Resizes a consumer's input channels, reusing the teacher's weights cyclically."""
    m = li.module
    with torch.no_grad():
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            idx = torch.arange(new_in) % m.in_channels
            m.weight = nn.Parameter(m.weight[:, idx].clone())
            m.in_channels = new_in
        elif isinstance(m, nn.Linear):
            old_in = m.in_features // li.factor
            cols = _expand(torch.arange(new_in) % old_in, li.factor)
            m.weight = nn.Parameter(m.weight[:, cols].clone())
            m.in_features = new_in * li.factor
        else:
            raise GenomeError(f"cannot adapt the input of {li.name} ({type(m).__name__})")


def _expand(idx: torch.Tensor, factor: int) -> torch.Tensor:
    """Channel indices → flattened feature indices (channel-major flatten)."""
    return (idx[:, None] * factor + torch.arange(factor)[None, :]).reshape(-1)


def _importance(a: GraphAnalysis, root: int) -> torch.Tensor:
    score = torch.zeros(a.channels[root])
    for li in a.producers(root):
        weight = li.module.weight
        assert isinstance(weight, torch.Tensor)
        w = weight.detach()
        score += w.abs().reshape(w.shape[0], -1).sum(dim=1)
    if not a.producers(root):
        raise GenomeError("channel group has no producing layer to rank channels by")
    return score


def _shrink_group(a: GraphAnalysis, root: int, keep: int) -> None:
    idx = torch.topk(_importance(a, root), keep).indices.sort().values
    with torch.no_grad():
        for li in a.layers.values():
            m = li.module
            out_hit = a.root(li.out_gid) == root
            in_hit = a.root(li.in_gid) == root
            if li.kind in ("dwconv", "norm") and out_hit:
                _slice_out(m, idx)
            elif li.kind in ("conv", "linear"):
                if out_hit:
                    _slice_out(m, idx)
                if in_hit:
                    _slice_in(m, idx, li.factor)
            elif (out_hit or in_hit) and li.kind != "norm":
                raise GenomeError(f"cannot shrink a group through {li.name} ({li.kind})")


def _slice_out(m: nn.Module, idx: torch.Tensor) -> None:
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
        if m.weight is not None and m.bias is not None:
            m.weight = nn.Parameter(m.weight[idx].clone())
            m.bias = nn.Parameter(m.bias[idx].clone())
        if m.running_mean is not None and m.running_var is not None:
            m.running_mean = m.running_mean[idx].clone()
            m.running_var = m.running_var[idx].clone()
        m.num_features = len(idx)
        return
    m.weight = nn.Parameter(m.weight[idx].clone())  # type: ignore[index]
    if getattr(m, "bias", None) is not None:
        m.bias = nn.Parameter(m.bias[idx].clone())  # type: ignore[index]
    if isinstance(m, nn.Conv1d | nn.Conv2d):
        m.out_channels = len(idx)
        if m.groups > 1:  # depthwise: the group count follows the channels
            m.groups = m.in_channels = len(idx)
    elif isinstance(m, nn.Linear):
        m.out_features = len(idx)


def _slice_in(m: nn.Module, idx: torch.Tensor, factor: int) -> None:
    if isinstance(m, nn.Linear):
        m.weight = nn.Parameter(m.weight[:, _expand(idx, factor)].clone())
        m.in_features = len(idx) * factor
    else:
        m.weight = nn.Parameter(m.weight[:, idx].clone())  # type: ignore[index]
        m.in_channels = len(idx)  # type: ignore[assignment]
