"""kubesim's controllers: what the real control plane would do after a write (status, garbage collection)."""

from kubesim.controllers.base import Controller
from kubesim.controllers.gc import GarbageCollector, NamespaceLifecycle
from kubesim.controllers.workloads import WorkloadStatus

__all__ = ["Controller", "GarbageCollector", "NamespaceLifecycle", "WorkloadStatus"]
