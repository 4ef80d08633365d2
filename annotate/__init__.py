"""annotate: MTurk-native annotation and consensus."""

__version__ = "0.1.0"
