"""graft.components: custom TFX components, each a component.py (spec) + executor.py (work)."""
