"""TextExampleGen: labelled text from a CSV or JSONL file, or DIR/<class>/*.txt."""
