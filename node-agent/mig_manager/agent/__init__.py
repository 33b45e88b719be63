"""The MIG manager node agent: level-triggered reconcile of the node's MIG config, component gates, host GPU clients,
a journal on the Node, events, metrics. The pure decisions are in `decide`, `labels`, `journal` and `host`'s rules;
`agent`, `kube`, `watcher` and `main` are the shell."""
