"""RunReport: one self-contained report.html per run (data, training, evaluation,
the blessing decision and the push), beside the run's other artifacts."""
