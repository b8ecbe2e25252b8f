"""`make soak`: the operator under a steady mix of jobs, node flaps, stops and deletes.

Pure parts (the plan, the checks over the samples, the report) are unit-tested in
tests/unit/soak; __main__.py is the shell that runs the cluster, the operator and the jobs.
"""
