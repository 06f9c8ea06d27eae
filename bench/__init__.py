"""scarbench: a benchmark harness for myocardial scar segmentation on 2D LGE-CMR.

Example:
    $ bench run --matrix smoke
    $ bench report runs/<run-id>
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
