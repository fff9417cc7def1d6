"""Moved: the packed attention kernel to `rlhfkit.models.kernels.attention`, switching a model to it to
`rlhfkit.models.setup.use_packed_attention`. This name stays for one release so old imports keep working."""
from rlhfkit.models.kernels.attention import NAME, packed_attention, register
from rlhfkit.models.setup import use_packed_attention

__all__ = ["NAME", "packed_attention", "register", "use_packed_attention"]
