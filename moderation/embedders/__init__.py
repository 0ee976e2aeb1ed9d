"""Embedding backends behind one protocol (see ``base.Embedder``); heavy imports are lazy."""
