"""EmbeddingGen: the frozen backbone's feature vector for every example, cached across runs."""
