"""`chatwatch bench <name>`: side-by-side measurements in one run (these machines are noisy).

Each benchmark is a module here exposing:
    HELP: str                                  one line for --help
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace, settings: chatwatch.config.Settings) -> dict
`run` prints human-readable progress to stdout; the CLI then prints the returned figures
as one JSON object on the last line.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def available() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        found[info.name] = importlib.import_module(f"{__name__}.{info.name}")
    return found
