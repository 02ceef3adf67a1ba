"""modelyard: a model's whole life on the machine a small team has.

data → train → tune → evaluate → explain → compress → registry → serve.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
