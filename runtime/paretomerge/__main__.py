"""``python -m paretomerge``: the command line, for subprocesses that must use this Python."""

from paretomerge.cli import app

app(prog_name="paretomerge")
