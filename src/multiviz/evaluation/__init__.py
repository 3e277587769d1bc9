"""Evaluation of explanations against ground truth and known behaviour (stage E)."""
