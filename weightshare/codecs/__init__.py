"""Codecs that turn a weight-shared model into a file (container, entropy coding, residuals)."""
