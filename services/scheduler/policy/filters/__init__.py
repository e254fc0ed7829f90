"""Placement filters: server filters drop whole servers, replica filters drop replicas."""
