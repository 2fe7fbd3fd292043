"""The runtime: what builds, owns and closes everything a running chatwatch needs.

core.py     Runtime: one configuration's logging, store, monitor, models, alerts, retention
process.py  Runtimes: the runtimes of a long-lived process, swapped on config change
"""

from chatwatch.runtime.core import Runtime
from chatwatch.runtime.process import Runtimes

__all__ = ["Runtime", "Runtimes"]
