"""Attach points, one module per family (the cilium/ebpf link/ layout)."""
