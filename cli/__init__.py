"""The command line: the composition root, the one place that imports flows, api and sql together."""
