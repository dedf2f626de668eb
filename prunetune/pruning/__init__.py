"""Structured channel pruning on Torch-Pruning's DependencyGraph (see the pruning-engine issue)."""
