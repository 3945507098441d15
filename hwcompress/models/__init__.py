"""Model architectures shipped with hwcompress (the built-in reference teachers)."""

from hwcompress.models.builtin import BUILTIN_MODELS, build_builtin

__all__ = ["BUILTIN_MODELS", "build_builtin"]
