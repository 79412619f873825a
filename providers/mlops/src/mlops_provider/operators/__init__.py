"""Operators of the MLOps provider, one module per integration."""
