"""report.html: one self-contained page per dataset, written by finalize beside the dataset card.

Light on purpose: the worker imports `refused` and `thumbnails` (a chunk keeps a few refused
thumbnails) and must not load the templating library a chunk never needs; finalize uses `write`."""
