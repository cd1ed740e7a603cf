"""`model-cache`: the command line. main (the parser and the dispatch), inject
(`inject -f`), and the downloader's commands from webhook.download.command."""

from webhook.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
