"""`kubectl trainingjob`: list, view, logs, stop and wait for TrainingJobs.

Functional core, imperative shell: `timefmt`, `summary`, `table`, `view`, `actions` and
`errors` are pure (parsed objects and plain data in, strings and data out); `kubectl` is the
only module that does I/O (it runs the kubectl binary); `main` is the argparse wiring.
"""
