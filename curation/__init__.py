"""Curation: the workspace store and everything done to a dataset before training on it."""
