"""Measurement behind `alexnet bench ...`: each benchmark runs our path and its baseline side by
side in one process and reports ratios (model: the training step vs torchvision; data: the input
pipeline vs torchvision's ImageFolder loader; curve: the fast path's loss curve vs the reference's).
Scripts that run these on a host, and their recorded results, live in benchmarks/ at the top."""
