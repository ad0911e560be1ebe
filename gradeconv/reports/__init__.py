"""Reporters: turn results into JSON, CSV, feedback files, Gradescope's results.json and terminal output."""
