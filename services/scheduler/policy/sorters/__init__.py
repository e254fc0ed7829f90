"""Placement sorters: sort keys for replicas within a server and for candidate servers."""
