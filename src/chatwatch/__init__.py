"""chatwatch: a multi-model chatbot that watches itself."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chatwatch")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
