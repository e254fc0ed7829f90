"""Placement policy: named server/replica filters and sorters, one small object per file.

Each object has ``name`` and ``describe()`` so a placement failure can say which rule rejected
what (Seldon v2's filter/sorter pipeline, with better explanations).
"""
