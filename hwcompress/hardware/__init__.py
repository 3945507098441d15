"""Device profiles and the constraint matrix they define."""

from hwcompress.hardware.constraints import METRICS, ConstraintMatrix
from hwcompress.hardware.profile import DeviceProfile, list_profiles, load_profile

__all__ = ["METRICS", "ConstraintMatrix", "DeviceProfile", "list_profiles", "load_profile"]
