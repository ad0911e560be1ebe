"""The judging core: cases, calls, checks, gradients, diagnosis and grading, for any layer the specs declare.

Nothing here is user-facing (see cli, notebook, platforms and reports); nothing here names a layer.
"""
