"""Data sets and generators for multiviz: synthetic scenes with ground truth for checking explanations."""
