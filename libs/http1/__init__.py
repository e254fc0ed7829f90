"""The gateway's own HTTP/1.1 server and pooled client (see messages.py for why)."""
