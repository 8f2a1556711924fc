"""Evaluation metrics of the five papers, pure torch: pixel metrics, embedding scores, Gram style score, plots."""
