"""The ``kyphosim`` command line: a thin Typer layer over the pipeline packages."""
