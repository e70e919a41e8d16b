"""The config language: file-shaped parsing, validation and the validated model."""
