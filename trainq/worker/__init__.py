"""The worker side: the task a worker runs, the runner that supervises a job's
attempts (lease, watch, adopt-or-launch, retries), the reconciler, and the devices
a worker owns. Only worker processes import it."""
