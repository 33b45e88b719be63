"""The cluster operator: reconciles the ClusterPolicy into MIG manager, device plugin and GFD workloads."""

__version__ = "0.1.0"
