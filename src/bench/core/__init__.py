"""Plain-PyTorch GRU4Rec: model, losses, sampler, optimizer, training and evaluation.

Nothing in this package imports Hydra or Lightning; they live at the edges.
"""
