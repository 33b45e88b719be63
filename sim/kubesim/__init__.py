"""kubesim: a simulated Kubernetes API server and GPU cluster for the demo and the tests."""
