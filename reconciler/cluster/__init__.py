"""The cluster: which nodes there are (the cluster file) and how each is doing (health).

In: the cluster file (YAML, read once at start). Out: `config.Cluster` and `health.Health`.
`config` reads that one file; `health` is pure bookkeeping with an injected clock. Neither
talks to an engine: the controller reports to `health` what the engines answered.

- `config.py`  the cluster file: nodes, endpoints, TLS files, the service CIDR
- `health.py`  where a node is judged Ready, Suspect (grace period) or NotReady (pods move)
"""
