"""astrofm benchmarks: each module measures figures against a baseline in the same run."""
