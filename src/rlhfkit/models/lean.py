"""Moved to `rlhfkit.models.kernels.lean` (the fast paths live together there, beside their plain twins). This
name stays for one release so old imports keep working; it is the same module object."""
import sys

from rlhfkit.models.kernels import lean as _moved

sys.modules[__name__] = _moved
