"""Evaluator: TFX's Evaluator with one more input, the Embeddings from EmbeddingGen."""
