"""Teacher architecture analysis (ArchSpec) and student surgery."""

from hwcompress.arch.analysis import build_spec
from hwcompress.arch.genome import Genome
from hwcompress.arch.spec import ArchSpec, GroupSpec, LayerSpec, UnitSpec
from hwcompress.arch.surgery import build_student

__all__ = [
    "ArchSpec",
    "Genome",
    "GroupSpec",
    "LayerSpec",
    "UnitSpec",
    "build_spec",
    "build_student",
]
