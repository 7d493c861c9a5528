"""clearwater: Project Clearwater's IMS core, rebuilt in Python on Twisted.

The protocol stacks live in subpackages (:mod:`clearwater.sip`, ...); the network functions are
twistd plugins. This module imports nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
