"""AnomaliesGate: stops the run before training when ExampleValidator found anomalies."""
