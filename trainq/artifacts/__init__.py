"""The artifact store: each job's checkpoints, outputs and archived logs, on any host."""
