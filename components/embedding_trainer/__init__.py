"""Trainer: TFX's Trainer with one more input, the Embeddings from EmbeddingGen."""
