"""Integration and unit tests of jobq.worker, one file per part where it has its own."""
