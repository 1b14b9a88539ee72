"""Control state shared by a fleet: a small key-value interface (kv.py), its backends
(local.py embedded, etcd.py), and what geodns keeps in it (shared.py, follower.py)."""
