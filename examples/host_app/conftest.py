"""Lets this repository run the example without installing longtask: `import longtask`
resolves to the source in chalicelib/longtask, the same package that `pip install`
puts in site-packages. In your own project, installing the package (distribution
`chalice-longtask`, from a checkout or its wheel) replaces this file."""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "chalicelib"
if str(SOURCE) not in sys.path:
    sys.path.insert(0, str(SOURCE))
