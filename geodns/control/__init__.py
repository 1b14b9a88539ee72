"""The control plane: runs once per server beside the first DNS worker."""
