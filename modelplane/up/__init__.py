"""`modelplane up`: run the whole control plane on one machine as supervised processes."""
