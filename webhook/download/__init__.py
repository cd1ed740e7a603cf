"""The downloader: `model-cache download` and `model-cache gc`."""
