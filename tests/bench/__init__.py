"""`make bench`: our operator side by side with batch/v1 Job and Kueue on one devcluster.

Pure parts (workloads, API-metric arithmetic, the table) are unit-tested in tests/unit/bench;
drive.py and __main__.py are the shell that talks to the cluster and the processes.
"""
