"""gradeconv: grade student conv and max-pool layers against a trusted reference."""

__version__ = "0.1.0"
