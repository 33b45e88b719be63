"""The node agent and the mig-parted-compatible MIG library: spec, catalog, planner, devices and CLI."""
