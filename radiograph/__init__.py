"""radiograph: radiopathomics graphs and SPARRA survival learning."""

__version__ = "0.1.0"
