"""The chunk worker: download, validate, de-duplicate, upload and clean up one chunk of a DatasetJob."""

__version__ = "0.1.0"
AGENT_TOKEN = "pixcrawler"
"""The product token robots.txt rules name (PIXCRAWLER_USER_AGENT_TOKEN changes it)."""


def user_agent(token: str = AGENT_TOKEN) -> str:
    """The User-Agent header: the product token first, so a robots.txt group naming it matches."""
    return f"{token}/{__version__} (+https://pixcrawler.io/bot)"


USER_AGENT = user_agent()
