"""Manifests, readers, preprocessing, the prepared-dataset cache, splits and datasets."""
