"""The small set of helpers that two or more scripts share: config, data, models, run records."""
