"""The chunk worker: download, validate, de-duplicate, upload and clean up one chunk of a DatasetJob."""

__version__ = "0.1.0"
USER_AGENT = f"pixcrawler-operator/{__version__} (+https://pixcrawler.io/bot)"
