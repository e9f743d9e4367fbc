"""The cluster as a whole: the live-worker registry (workers write it, everyone reads
it), why queued jobs wait, and the figures (/stats, /metrics, /health) computed once."""
