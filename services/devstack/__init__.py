"""The whole system on local defaults, in one process: what `deploy/run.sh` starts."""
