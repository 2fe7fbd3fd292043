"""`chatwatch bench <name>`: side-by-side measurements in one run (these machines are noisy).

Each benchmark is a module here exposing:
    HELP: str                                  one line for --help
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace, settings: chatwatch.config.Settings) -> dict
`run` prints human-readable progress to stdout; the CLI then prints the returned figures
as one JSON object on the last line.

The CLI lists the benchmarks by file name and imports only the one that runs, so neither
`chatwatch --version` nor `ask` pays for numpy-heavy benchmark modules.
"""
