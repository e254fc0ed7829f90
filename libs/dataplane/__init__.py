"""The data plane's core, shared by the gateway and the dataflow workers: the route table kept in
step with KV, balancing, in-flight counts, held requests, retries on another replica, reloading
evicted models, the HTTP client to replicas and the load signals the autoscaler reads.

A pipeline step calls its model through this code inside the dataflow worker, exactly as a client's
request is forwarded by the gateway, without crossing the gateway process.
"""
