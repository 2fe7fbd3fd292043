"""The `chatwatch` command: `parser.py` builds the argument parser and runs the chat
commands; `data.py` adds the commands over the recorded history (export, stats, cleanup).
Heavy modules (pandas, the benchmarks, Streamlit) are imported only by the command that
needs them, so `chatwatch --version` and `chatwatch ask` start fast."""

from chatwatch.cli.parser import main

__all__ = ["main"]
