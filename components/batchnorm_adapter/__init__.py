"""BatchNormAdapter: AdaBN as a pipeline step (see component.py)."""
