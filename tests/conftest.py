"""Suite-wide settings."""

from __future__ import annotations

import os

# Tests send no traffic beyond this machine: never look up or pull from a registry.
os.environ["MESHBED_OFFLINE"] = "1"
