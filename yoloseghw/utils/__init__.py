"""Single definitions shared by the package: console, errors, offline setup, metric keys, option checks, plots."""
