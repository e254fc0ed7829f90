"""Bearer tokens and roles: who is calling, shared by every listener that checks it.

``tokens`` makes, hashes and verifies tokens (a KV-backed ``TokenStore``); ``roles`` names the
roles; ``bearer`` reads the token out of an ``Authorization`` header. What each role may do is
decided by the service that serves the call (the api's ``authz``), not here.
"""
