"""Codegen stage: C/C++ sources generated from a model and its preprocessing."""
