"""BlessingReport: why a model was (not) blessed, as a readable artifact."""
