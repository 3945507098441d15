"""Teacher architecture analysis (ArchSpec) and student surgery."""

from hwcompress.arch.spec import ArchSpec, Genome, GroupSpec, LayerSpec, UnitSpec, build_spec
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
