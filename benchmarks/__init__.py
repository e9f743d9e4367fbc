"""trainq's benchmarks: side-by-side figures against baselines from the same run."""
